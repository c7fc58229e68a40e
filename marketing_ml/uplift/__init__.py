"""Uplift: the effect of contacts, learned from the randomised contact log; judged against the truth when
the simulator made the data."""
