"""Bounded label values shared by the collectors (organisation paths to ministries)."""

from __future__ import annotations


def ministry_of(org_path: str) -> str:
    """The ministry code of a materialised org path (``gov/moi/nfa/disaster`` -> ``moi``);
    ``""`` for the root itself."""
    parts = org_path.split("/")
    return parts[1] if len(parts) > 1 else ""
