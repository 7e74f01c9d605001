"""The REST API (FastAPI) under ``/v1``: thin handlers over the store and domain rules."""
