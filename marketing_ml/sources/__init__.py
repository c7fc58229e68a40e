"""Bring your own data: the data contract of the raw tables, the mapping of a provider's own extracts onto
it, and the validation that stops data breaking it before anything downstream reads it."""
