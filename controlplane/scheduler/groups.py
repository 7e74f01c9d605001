"""Hard server-group rules re-checked at commit time (pure).

The store locks the group row, reads where the group's members are *now* and asks
:func:`violation` whether the plan still respects the rule; if not, the commit is a
placement conflict and the request is re-scheduled on a fresh snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from controlplane.domain.server_group import GroupPolicy


def violation(
    policy: GroupPolicy, cap: int | None, members: Mapping[str, int], hosts: Sequence[str]
) -> str | None:
    """Why placing new members on ``hosts`` (host ids, one per instance) breaks the hard
    rule given the members already placed (``members``: host id -> count), else None."""
    if policy is GroupPolicy.ANTI_AFFINITY:
        limit = cap or 1
        for host, n in Counter(hosts).items():
            if members.get(host, 0) + n > limit:
                return (
                    f"anti-affinity: host {host} would hold {members.get(host, 0) + n} "
                    f"members, at most {limit}"
                )
    elif policy is GroupPolicy.AFFINITY:
        occupied = {h for h, n in members.items() if n > 0}
        if len(occupied | set(hosts)) > 1:
            return f"affinity: members would be on {len(occupied | set(hosts))} hosts"
    return None
