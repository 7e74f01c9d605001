"""Bearer tokens: generated with ``secrets``, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets


def new_token(prefix: str) -> str:
    """A fresh random token such as ``gcu_...`` (user) or ``gch_...`` (host)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """The digest stored in the database; tokens themselves are never stored."""
    return hashlib.sha256(token.encode()).hexdigest()
