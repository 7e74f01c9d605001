"""The fleet in array form: an immutable snapshot of hosts that checks and scores read
as numpy columns, so one decision costs a few array passes instead of a Python loop per
host.

A :class:`Fleet` keeps the :class:`~controlplane.scheduler.view.HostView` tuple it was built
from (``fleet.hosts``; position ``i`` of every column is ``hosts[i]``) and, per host: usable
and used amounts (``(3, N)`` int64, rows in :data:`~controlplane.domain.resources.DIMENSIONS`
order), whether it takes placements at all (state schedulable and data centre active), its
data centre and trait set as small integer codes into per-fleet vocabularies, and the
CRC-32 and byte length of its name (for the seeded tie-break).

Fleets are never modified. The store's fleet index derives the next snapshot from the last:
:meth:`Fleet.replace` copies the columns that change (a memcpy; the others are shared, as
every column is read-only) and patches the few changed positions (the host tuple itself is
patched lazily, so no per-host Python work happens),
:meth:`Fleet.without` drops deleted hosts and :meth:`Fleet.only` gives one data centre's
hosts (memoised). Derived values that cost a sort or a table (the id index, name order,
seeded tie-breaks) are computed on first use and carried over while they stay valid.

Host ids are unique within a fleet; host names are expected to be (the store enforces it).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from controlplane.scheduler.view import SCHEDULABLE, HostView

Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]
Positions = NDArray[np.intp]

_USABLE = tuple(attrgetter(f"usable_{d}") for d in ("vcpus", "ram_mib", "disk_gib"))
_USED = tuple(attrgetter(f"used_{d}") for d in ("vcpus", "ram_mib", "disk_gib"))
_DATACENTRE, _TRAITS, _NAME = attrgetter("datacentre"), attrgetter("traits"), attrgetter("name")
#: Seeds whose tie-break column is kept per fleet (a deployment uses one seed).
_SEEDS_KEPT = 8
#: Up to this many hosts are put in name order directly rather than by the fleet's name
#: order (which costs a sort of every name, once per fleet lineage).
_SORT_DIRECTLY = 64
#: Lazily patched hosts kept before the host tuple is rebuilt.
_PATCHES_KEPT = 256
#: Memoised values that stay valid while no host is renamed or added (the views of one
#: data centre are patched instead, while no host is added or moves).
_KEPT = frozenset({"tiebreak", "lengths", "name_rank"})
#: Columns besides usable/used, as (attribute, dtype).
_COLUMNS = (
    ("placeable", np.bool_),
    ("datacentre", np.int32),
    ("traits", np.int32),
    ("name_crc", np.uint32),
    ("name_bytes", np.int64),
)


def _frozen(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


class _Vocab:
    """Value -> small int code, shared between fleets derived from one another (copied
    before it grows, so an older fleet's codes never change meaning)."""

    __slots__ = ("codes", "values")

    def __init__(self, values: Sequence[Any] = ()) -> None:
        self.values: list[Any] = list(values)
        self.codes: dict[Any, int] = {v: i for i, v in enumerate(self.values)}

    def encode(self, items: Iterable[Any]) -> tuple[list[int], _Vocab]:
        """Codes for ``items`` and the vocabulary that holds them (``self`` unless grown)."""
        items = list(items)
        missing = [v for v in dict.fromkeys(items) if v not in self.codes]
        vocab = _Vocab([*self.values, *missing]) if missing else self
        return list(map(vocab.codes.__getitem__, items)), vocab


class Fleet:
    """An immutable snapshot of hosts in array form (see the module doc)."""

    __slots__ = (
        "_base",
        "_dcs",
        "_hosts",
        "_index",
        "_memo",
        "_patch",
        "_size",
        "_trait_sets",
        "datacentre",
        "name_bytes",
        "name_crc",
        "placeable",
        "traits",
        "usable",
        "used",
    )

    #: ``(3, N)`` int64: vcpus, ram_mib, disk_gib rows.
    usable: Ints
    used: Ints
    #: The host takes placements: its state is schedulable and its data centre active.
    placeable: Bools
    #: Codes into :attr:`datacentres` / :attr:`trait_sets`.
    datacentre: NDArray[np.int32]
    traits: NDArray[np.int32]
    #: ``crc32(name.encode(), 0)`` and ``len(name.encode())`` (for the tie-break).
    name_crc: NDArray[np.uint32]
    name_bytes: Ints

    def __init__(
        self,
        base: tuple[HostView, ...],
        patch: dict[int, HostView],
        size: int,
        columns: dict[str, NDArray[Any]],
        vocabs: tuple[_Vocab, _Vocab],
        index: dict[str, int] | None = None,
        memo: dict[Any, Any] | None = None,
    ) -> None:
        self._base, self._patch, self._size = base, patch, size
        self._hosts: tuple[HostView, ...] | None = None if patch else base
        self.usable = _frozen(columns["usable"])
        self.used = _frozen(columns["used"])
        self.placeable = _frozen(columns["placeable"])
        self.datacentre = _frozen(columns["datacentre"])
        self.traits = _frozen(columns["traits"])
        self.name_crc = _frozen(columns["name_crc"])
        self.name_bytes = _frozen(columns["name_bytes"])
        self._dcs, self._trait_sets = vocabs
        self._index = index
        self._memo: dict[Any, Any] = memo if memo is not None else {}

    # -- building ------------------------------------------------------------------------

    @staticmethod
    def _encode(
        hosts: Sequence[HostView], vocabs: tuple[_Vocab, _Vocab]
    ) -> tuple[dict[str, NDArray[Any]], tuple[_Vocab, _Vocab]]:
        n = len(hosts)
        usable = np.empty((3, n), np.int64)
        used = np.empty((3, n), np.int64)
        for row in range(3):
            usable[row] = np.fromiter(map(_USABLE[row], hosts), np.int64, n)
            used[row] = np.fromiter(map(_USED[row], hosts), np.int64, n)
        dcs, dc_vocab = vocabs[0].encode(map(_DATACENTRE, hosts))
        traits, trait_vocab = vocabs[1].encode(map(_TRAITS, hosts))
        names = list(map(str.encode, map(_NAME, hosts)))
        columns: dict[str, NDArray[Any]] = {
            "usable": usable,
            "used": used,
            "placeable": np.fromiter(
                (h.state in SCHEDULABLE and h.datacentre_active for h in hosts), np.bool_, n
            ),
            "datacentre": np.array(dcs, np.int32),
            "traits": np.array(traits, np.int32),
            "name_crc": np.fromiter(map(zlib.crc32, names), np.uint32, n),
            "name_bytes": np.fromiter(map(len, names), np.int64, n),
        }
        return columns, (dc_vocab, trait_vocab)

    @classmethod
    def of(cls, hosts: Iterable[HostView]) -> Fleet:
        """The fleet of ``hosts``, in their order."""
        view = tuple(hosts)
        columns, vocabs = cls._encode(view, (_Vocab(), _Vocab()))
        return cls(view, {}, len(view), columns, vocabs)

    def replace(self, changed: Iterable[HostView]) -> Fleet:
        """A new fleet where hosts with known ids are replaced (same position) and hosts
        with unknown ids are appended. Copies the columns and patches the changed positions:
        the Python work is proportional to the changed hosts only."""
        index = self._ids()
        latest: dict[int, HostView] = {}
        size = self._size
        for host in changed:
            position = index.get(host.id)
            if position is None:
                if index is self._index:
                    index = dict(index)
                position = index[host.id] = size
                size += 1
            latest[position] = host
        if not latest:
            return self
        n = self._size
        positions = np.fromiter(latest, np.intp, len(latest))
        patch, vocabs = self._encode(list(latest.values()), (self._dcs, self._trait_sets))
        columns: dict[str, NDArray[Any]] = {}
        for name in ("usable", "used", *(c for c, _dtype in _COLUMNS)):
            old: NDArray[Any] = getattr(self, name)
            if size == n and np.array_equal(old[..., positions], patch[name]):
                columns[name] = old  # unchanged (a claim changes ``used`` only): shared
                continue
            if size == n:
                column = old.copy()  # a memcpy
            else:
                grown = (*old.shape[:-1], size - n)
                column = np.concatenate((old, np.zeros(grown, old.dtype)), axis=-1)
            column[..., positions] = patch[name]
            columns[name] = column
        renamed = size > n or any(self.host(p).name != h.name for p, h in latest.items())
        memo = {} if renamed else {k: v for k, v in dict(self._memo).items() if k[0] in _KEPT}
        if size == n and all(self.host(p).datacentre == h.datacentre for p, h in latest.items()):
            # the data centres' views stay valid: patch those the change touches
            for key, sub in dict(self._memo).items():
                if key[0] == "only":
                    inside = [h for h in latest.values() if h.datacentre == key[1]]
                    memo[key] = sub.replace(inside) if inside else sub
        if self._hosts is not None:
            base, patches = self._hosts, latest
        else:
            base, patches = self._base, {**self._patch, **latest}
        if len(patches) > _PATCHES_KEPT:
            base, patches = _patched(base, patches, size), {}
        return Fleet(base, patches, size, columns, vocabs, index, memo)

    def without(self, ids: Iterable[str]) -> Fleet:
        """A new fleet without the hosts with these ids (unknown ids are ignored)."""
        index = self._ids()
        gone = [p for i in ids if (p := index.get(i)) is not None]
        if not gone:
            return self
        keep = np.ones(self._size, np.bool_)
        keep[gone] = False
        return self._take(np.flatnonzero(keep))

    def only(self, datacentre: str) -> Fleet:
        """The hosts of one data centre (memoised on this fleet)."""
        key = ("only", datacentre)
        fleet: Fleet | None = self._memo.get(key)
        if fleet is None:
            code = self._dcs.codes.get(datacentre)
            if code is None:
                positions = np.empty(0, np.intp)
            else:
                positions = np.flatnonzero(self.datacentre == code)
            fleet = self._memo[key] = self._take(positions)
        return fleet

    def _take(self, positions: Positions) -> Fleet:
        """The sub-fleet at ``positions`` (ascending), sharing vocabularies."""
        hosts = tuple(map(self.hosts.__getitem__, positions.tolist()))
        columns: dict[str, NDArray[Any]] = {
            "usable": np.take(self.usable, positions, axis=1),
            "used": np.take(self.used, positions, axis=1),
        }
        for name, _dtype in _COLUMNS:
            columns[name] = getattr(self, name)[positions]
        memo: dict[Any, Any] = {}
        rank: Ints | None = self._memo.get(("name_rank",))
        if rank is not None:
            memo[("name_rank",)] = _frozen(_rank_of(np.argsort(rank[positions], kind="stable")))
        vocabs = (self._dcs, self._trait_sets)
        return Fleet(hosts, {}, len(hosts), columns, vocabs, None, memo)

    # -- reading -------------------------------------------------------------------------

    @property
    def hosts(self) -> tuple[HostView, ...]:
        """The hosts, position by position."""
        if self._hosts is None:
            self._hosts = _patched(self._base, self._patch, self._size)
        return self._hosts

    def host(self, position: int) -> HostView:
        """The host at ``position`` (without rebuilding a lazily patched host tuple)."""
        if self._hosts is not None:
            return self._hosts[position]
        found = self._patch.get(position)
        return found if found is not None else self._base[position]

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"Fleet({self._size} hosts)"

    def _ids(self) -> dict[str, int]:
        if self._index is None:
            self._index = {h.id: i for i, h in enumerate(self.hosts)}
        return self._index

    def position(self, host_id: str) -> int | None:
        """Where the host with this id is, or None."""
        return self._ids().get(host_id)

    @property
    def generation(self) -> Ints:
        """Each host's generation (built on first use)."""
        column: Ints | None = self._memo.get(("generation",))
        if column is None:
            hosts = self.hosts
            column = np.fromiter((h.generation for h in hosts), np.int64, len(hosts))
            column = self._memo[("generation",)] = _frozen(column)
        return column

    @property
    def datacentres(self) -> tuple[str, ...]:
        """Data centre per code (a superset of the codes in use)."""
        return tuple(self._dcs.values)

    @property
    def trait_sets(self) -> tuple[frozenset[str], ...]:
        """Trait set per code (a superset of the codes in use)."""
        return tuple(self._trait_sets.values)

    def datacentre_code(self, datacentre: str) -> int | None:
        """The code of ``datacentre`` in :attr:`datacentre`, None if no host was ever in it."""
        return self._dcs.codes.get(datacentre)

    def tiebreak(self, seed: int) -> NDArray[np.uint32]:
        """``zlib.crc32(name.encode(), seed & 0xFFFFFFFF)`` of every host.

        CRC-32 is affine in its initial value: ``crc32(d, s) == crc32(d, 0) ^ crc32(z, s) ^
        crc32(z, 0)`` where ``z`` is ``len(d)`` zero bytes. So the seeded column is the
        unseeded one XOR a constant per name length: one small table per seed (memoised)."""
        key = ("tiebreak", seed & 0xFFFFFFFF)
        column: NDArray[np.uint32] | None = self._memo.get(key)
        if column is None:
            lengths, inverse = self._lengths()
            s = key[1]
            table = np.array(
                [zlib.crc32(bytes(n), s) ^ zlib.crc32(bytes(n)) for n in lengths.tolist()],
                np.uint32,
            )
            column = _frozen(self.name_crc ^ table[inverse])
            seeds = [k for k in list(self._memo) if k[0] == "tiebreak"]  # list(): atomic
            if len(seeds) >= _SEEDS_KEPT:
                for old in seeds:
                    self._memo.pop(old, None)
            self._memo[key] = column
        return column

    def _lengths(self) -> tuple[Ints, Positions]:
        key = ("lengths",)
        found: tuple[Ints, Positions] | None = self._memo.get(key)
        if found is None:
            lengths, inverse = np.unique(self.name_bytes, return_inverse=True)
            found = self._memo[key] = (lengths, inverse.reshape(-1))
        return found

    def name_rank(self) -> Ints:
        """Each host's position in name order (ties by position); computed once."""
        key = ("name_rank",)
        rank: Ints | None = self._memo.get(key)
        if rank is None:
            names = [h.name for h in self.hosts]
            order = np.array(sorted(range(len(names)), key=names.__getitem__), np.intp)
            rank = self._memo[key] = _frozen(_rank_of(order))
        return rank

    def first_by_name(self, positions: Positions, k: int) -> Positions:
        """The (at most) ``k`` of ``positions`` whose hosts come first by name, in name
        order."""
        if len(positions) <= 1:
            return positions
        if len(positions) <= _SORT_DIRECTLY and ("name_rank",) not in self._memo:
            host = self.host
            kept = sorted(positions.tolist(), key=lambda p: (host(p).name, p))[:k]
            return np.array(kept, np.intp)
        ranks = self.name_rank()[positions]
        if len(positions) > k:
            keep = np.argpartition(ranks, k - 1)[:k]
            positions, ranks = positions[keep], ranks[keep]
        return positions[np.argsort(ranks)]


def _patched(
    base: tuple[HostView, ...], patch: dict[int, HostView], size: int
) -> tuple[HostView, ...]:
    hosts: list[HostView | None] = [*base, *([None] * (size - len(base)))]
    for position, host in patch.items():
        hosts[position] = host
    return cast(tuple[HostView, ...], tuple(hosts))  # every appended position is patched


def at(grid: Ints, positions: Positions) -> Ints:
    """The columns of a ``(3, N)`` grid at ``positions`` (ascending, unique): the grid
    itself when that is every position (``np.take``: much faster than ``grid[:, p]``)."""
    if len(positions) == grid.shape[1]:
        return grid
    return np.take(grid, positions, axis=1)


def _rank_of(order: Positions) -> Ints:
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank
