"""Uplift: the effect of contacts, learned from the randomised contact log and judged against the truth."""
