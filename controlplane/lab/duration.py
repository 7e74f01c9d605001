"""Durations as people type them (``14d``, ``36h``, ``2w``, ``1w3d``) in whole hours."""

from __future__ import annotations

import re

from controlplane.domain.errors import InvalidRequest

_PART = re.compile(r"(\d{1,5})([hdw])")
_WHOLE = re.compile(r"^(?:\d{1,5}[hdw])+$")
_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def parse_hours(text: str, *, field: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``text`` in hours; InvalidRequest naming ``field``, the value and the limit otherwise."""
    value = text.strip().lower()
    if not _WHOLE.match(value):
        raise InvalidRequest(
            f"{field}: {text!r} is not a duration; write e.g. 14d, 36h, 2w or 1w3d",
            code="lab.invalid_duration",
            field=field,
            value=text,
        )
    hours = sum(int(n) * _HOURS[unit] for n, unit in _PART.findall(value))
    if hours < minimum:
        raise InvalidRequest(
            f"{field}: {text} is shorter than the minimum {show_hours(minimum)}",
            code="lab.duration_out_of_range",
            field=field,
            value=text,
            limit=show_hours(minimum),
        )
    if maximum is not None and hours > maximum:
        raise InvalidRequest(
            f"{field}: {text} ({show_hours(hours)}) is longer than the limit {show_hours(maximum)}",
            code="lab.duration_out_of_range",
            field=field,
            value=text,
            limit=show_hours(maximum),
        )
    return hours


def show_hours(hours: int) -> str:
    """``hours`` the way people write it: ``14d``, ``1d12h``, ``36h`` -> ``1d12h``."""
    days, rest = divmod(hours, 24)
    if days and rest:
        return f"{days}d{rest}h"
    return f"{days}d" if days else f"{rest}h"
