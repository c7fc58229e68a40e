"""The real-time API: the online feature table, the in-memory store, the champions and the FastAPI app."""
