"""The candidate hosts of one decision, best first, as key columns.

A rank is compared lexicographically: ``(group preference, policy key, policy key,
seeded tie-break, name)``, smallest first (:mod:`controlplane.scheduler.scores`), then the
fleet position. The columns are computed once per decision for every feasible host. Only
a host the decision claims gets a new rank afterwards (:meth:`Ranking.update`); every other
host keeps its rank until it is dropped (:meth:`Ranking.drop`). So the candidates split in
two:

- the *static* ones, whose ranks are the columns: their best ``depth`` (the instances
  still to place) are found at once, without a sort of the fleet (``np.partition`` column
  by column, narrowing to the rows that tie for the last places; columns equal for every
  candidate are skipped), sorted and queued; the queue is refilled only if it runs dry;
- the *moved* ones (claimed by this decision, at most ``count``), kept as Python tuples.

:meth:`Ranking.best` compares the head of the queue with the moved hosts, so placing
``count`` instances costs about one pass over the columns, not ``count`` passes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from controlplane.scheduler.fleet import Fleet, Positions
from controlplane.scheduler.scores import Rank

#: A removed row's tie-break: above every CRC-32.
_GONE = 1 << 40
#: A candidate's full key: the rank, then the fleet position.
Key = tuple[float, float, float, int, str, int]


class Ranking:
    """Candidates at fleet positions ``at`` (ascending) with their rank columns (working
    copies); ``depth`` is how many hosts the decision may still take."""

    __slots__ = (
        "_constant",
        "_depth",
        "_head",
        "_moved",
        "_queue",
        "_static",
        "at",
        "columns",
        "fleet",
        "tiebreak",
    )

    def __init__(
        self,
        fleet: Fleet,
        at: Positions,
        columns: tuple[NDArray[np.float64], ...],
        tiebreak: NDArray[np.uint32],
        depth: int = 1,
    ) -> None:
        self.fleet = fleet
        self.at = at
        self.columns = tuple(np.array(c, np.float64) for c in columns)
        self.tiebreak = tiebreak.astype(np.int64)
        self._depth = max(depth, 1)
        self._static = len(at)
        self._moved: dict[int, Key] = {}
        self._queue: list[int] = []  # static rows, best last (popped from the end)
        self._head: tuple[float, float, float, int, str, int, int] | None = None
        #: Per column: whether every static candidate has the same value (then skipped).
        self._constant = [bool(len(c) and c.min() == c.max()) for c in self.columns]

    @property
    def alive(self) -> int:
        """How many candidates are left."""
        return self._static + len(self._moved)

    def _key(self, row: int) -> Key:
        position = int(self.at[row])
        return (
            float(self.columns[0][row]),
            float(self.columns[1][row]),
            float(self.columns[2][row]),
            int(self.tiebreak[row]),
            self.fleet.host(position).name,
            position,
        )

    def best(self) -> int | None:
        """The fleet position of the best candidate, or None if none is left."""
        row = self._static_best()
        best = None
        if row is not None:
            if self._head is None or self._head[-1] != row:
                self._head = (*self._key(row), row)  # a static row's key never changes
            best = self._head[:-1]
        for key in self._moved.values():
            if best is None or key < best:
                best = key
        return None if best is None else best[-1]

    def _static_best(self) -> int | None:
        queue = self._queue
        while queue and self.tiebreak[queue[-1]] == _GONE:
            queue.pop()
        if not queue and self._static:
            queue.extend(reversed(self._top(self._depth)))
        return queue[-1] if queue else None

    def _top(self, m: int) -> list[int]:
        """The best ``m`` static rows, best first."""
        group = np.flatnonzero(self.tiebreak != _GONE)
        taken: list[NDArray[np.intp]] = []
        need = m
        searched = [c for c, same in zip(self.columns, self._constant, strict=True) if not same]
        for column in (*searched, self.tiebreak):
            if len(group) <= need:
                break
            # rows below the need-th smallest value are in; rows equal to it tie on to
            # the next column for the places left
            values = column[group]
            kth = np.partition(values, need - 1)[need - 1]
            below = group[values < kth]
            taken.append(below)
            need -= len(below)
            group = group[values == kth]
        rows: list[int] = np.concatenate([*taken, group]).tolist()
        return sorted(rows, key=self._key)[:m]  # few rows; names settle full ties

    def _row(self, position: int) -> int:
        row = int(np.searchsorted(self.at, position))  # ``at`` is ascending
        assert self.at[row] == position, position
        return row

    def _unqueue(self, row: int) -> None:
        for column in self.columns:
            column[row] = np.inf
        self.tiebreak[row] = _GONE
        self._static -= 1

    def update(self, position: int, rank: Rank) -> None:
        """Give the candidate at ``position`` a new rank."""
        row = self._row(position)
        if row not in self._moved:
            self._unqueue(row)
        self._moved[row] = (
            float(rank[0]),
            float(rank[1]),
            float(rank[2]),
            int(rank[3]),
            rank[4],
            position,
        )

    def drop(self, position: int) -> None:
        """Remove the candidate at ``position``."""
        self._drop_row(self._row(position))

    def drop_where(self, rejected: NDArray[np.bool_]) -> None:
        """Remove every candidate whose fleet position is set in ``rejected``."""
        for row in np.flatnonzero(rejected[self.at]).tolist():
            self._drop_row(row)

    def _drop_row(self, row: int) -> None:
        if self._moved.pop(row, None) is None and self.tiebreak[row] != _GONE:
            self._unqueue(row)
