"""The day's decisions from the scores: whom each advisor calls, which campaign each client gets, and what
those contacts are worth against random targeting and the oracle."""
