"""Validated name types.

Every name that can reach libvirt XML, a file path or a shell command is one of these types,
so dangerous characters are refused at the edge with a message naming the rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

#: Short identifier: ministries, agencies, projects, data centres ("moi", "tpe-1").
Code = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$"),
    Field(description="lower-case letters, digits and '-', starting with a letter, 1-32 chars"),
]

#: Resource name: instances, hosts, flavors, images ("web-01", "m1.small").
Name = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"),
    Field(
        description="letters, digits, '.', '_' and '-', starting with a letter or digit, 1-63 chars"
    ),
]

#: Free text shown to people (display names, descriptions): no control characters.
Text = Annotated[
    str,
    StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$", max_length=200),
]

#: Trait names such as ``ssd``, ``gpu``, ``CUSTOM_FIPS``.
Trait = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]


def _no_parent_segments(path: str) -> str:
    if ".." in path.split("/"):
        raise ValueError("path must not contain '..' segments")
    return path


#: Absolute local path on a host (images): no '..' segments, no shell metacharacters.
LocalPath = Annotated[
    str,
    StringConstraints(pattern=r"^/[A-Za-z0-9._/+-]{0,1023}$"),
    AfterValidator(_no_parent_segments),
    Field(description="absolute path of letters, digits and . _ / + - ; no '..'"),
]

#: Instance ids are canonical lower-case UUIDs (they become libvirt domain UUIDs).
InstanceId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]


def require_unique(names: Iterable[str], what: str) -> None:
    """Raise ValueError naming every one of ``names`` given more than once, e.g.
    ``group names must be unique; given twice: db, web`` (``what``: "group names")."""
    twice = sorted(name for name, count in Counter(names).items() if count > 1)
    if twice:
        raise ValueError(f"{what} must be unique; given twice: {', '.join(twice)}")
