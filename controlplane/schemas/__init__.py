"""API request and response models, shared by ``api/`` and ``client.py``.

Request models forbid unknown fields, so a typo is an error rather than silently ignored.
Responses reuse the domain models where the shapes are the same.
"""
