"""Metering and showback: usage per project per calendar month, and the fees it costs.

Pure functions over plain records; the store supplies the intervals, the API the clock.

**What is metered.** An instance accrues usage while it holds a host claim: from
``scheduled_at`` (placement claimed a host) to ``deleted_at`` (the host was given back),
or up to *now* while it is still live, whatever its power state. A STOPPED server keeps
its claim (starting it again can never fail for lack of room), so it is charged; a
PENDING one holds nothing, so it is not.

**Units.** For one instance of ``v`` vCPUs, ``r`` MiB RAM and ``d`` GiB disk that held
its claim for ``h`` hours of a month of ``H`` hours (``days * 24``; months are UTC):

- instance-hours ``h``, vCPU-hours ``v * h``, RAM GiB-hours ``r / 1024 * h``;
- disk GiB-months ``d * h / H``: a disk kept the whole month is exactly ``d`` GiB-months,
  whatever the month's length.

**Exactness.** Intervals are clipped to ``[month start, min(month end, now))`` with
datetime arithmetic (exact to the microsecond) and accumulated as integers
(:class:`Usage`), so splitting a period into months loses nothing. Only the reported
quantities are rounded, once, to 6 decimal places (:data:`QUANTITY_PLACES`).

**Fees.** A :class:`PriceTable` (YAML, see ``docs/examples/prices-2026.yaml``) prices
each dimension; :func:`fees` multiplies the *reported* quantities by the prices and
rounds each dimension's fee to the cent (half up), and the total is the sum of the
rounded fees, so anyone can redo the bill from a CSV line and the price table.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
)

from controlplane.domain.fileproblems import FileProblem, InvalidFile
from controlplane.domain.yamlnodes import load_yaml_model

#: Decimal places of reported quantities (hours, GiB-hours, GiB-months).
QUANTITY_PLACES = 6
#: Fees are rounded to this (half up), per dimension.
CENT = Decimal("0.01")

_US_PER_HOUR = 3_600_000_000
_MIB_PER_GIB = 1024
_ONE_US = timedelta(microseconds=1)

#: The metered dimensions, in report order (also the price table's fields, per unit).
DIMENSIONS: tuple[str, ...] = ("instance_hours", "vcpu_hours", "ram_gib_hours", "disk_gib_months")
#: Price table field of each dimension.
PRICE_FIELDS: dict[str, str] = {
    "instance_hours": "instance_hour",
    "vcpu_hours": "vcpu_hour",
    "ram_gib_hours": "ram_gib_hour",
    "disk_gib_months": "disk_gib_month",
}

# -- months -----------------------------------------------------------------------------------

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_MIN_YEAR, _MAX_YEAR = 1970, 9998


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month in UTC; :attr:`start` inclusive, :attr:`end` exclusive."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (_MIN_YEAR <= self.year <= _MAX_YEAR and 1 <= self.month <= 12):
            raise ValueError(
                f"month must be YYYY-MM with a month 01-12 and a year {_MIN_YEAR}-{_MAX_YEAR}, "
                f"e.g. 2026-11; got {self.year:04d}-{self.month:02d}"
            )

    @classmethod
    def parse(cls, text: str) -> Month:
        """``'2026-11'`` -> ``Month(2026, 11)``; anything else is a ValueError saying why."""
        found = _MONTH.match(text.strip()) if isinstance(text, str) else None
        if found is None:
            raise ValueError(f"month must be YYYY-MM, e.g. 2026-11; got {text!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, when: datetime) -> Month:
        """The month holding the aware datetime ``when`` (taken in UTC)."""
        utc = when.astimezone(UTC)
        return cls(utc.year, utc.month)

    @property
    def start(self) -> datetime:
        """00:00 UTC on the first day."""
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """00:00 UTC on the first day of the next month (valid for the last month too)."""
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)

    @property
    def days(self) -> int:
        """Days in the month."""
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def hours(self) -> int:
        """Hours in the month (UTC has no daylight saving): ``days * 24``."""
        return self.days * 24

    def next(self) -> Month:
        """The following month."""
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def _month_text(value: str) -> str:
    return str(Month.parse(value))


#: A ``YYYY-MM`` string, validated (for request fields and query parameters).
MonthText = Annotated[
    str,
    AfterValidator(_month_text),
    Field(description="calendar month in UTC, YYYY-MM", examples=["2026-11"]),
]


# -- intervals and exact usage ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """One instance's host claim: from ``start`` (scheduled) to ``end`` (deleted; None =
    still holding it), with the size it had. A resized claim is several intervals with the
    same ``instance_id``, one per size."""

    instance_id: str
    org_path: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    start: datetime
    end: datetime | None


def overlap(start: datetime, end: datetime | None, lo: datetime, hi: datetime) -> timedelta:
    """Length of ``[start, end) ∩ [lo, hi)`` (``end`` None: unbounded), never negative."""
    first = max(start, lo)
    last = hi if end is None else min(end, hi)
    return max(last - first, timedelta(0))


@dataclass(frozen=True, slots=True)
class Usage:
    """Exact usage as integer microsecond-units (no rounding anywhere); ``instances``
    counts the claims that contributed a non-empty overlap."""

    instances: int = 0
    instance_us: int = 0
    vcpu_us: int = 0
    ram_mib_us: int = 0
    disk_gib_us: int = 0

    @classmethod
    def of(cls, interval: Interval, lo: datetime, hi: datetime) -> Usage:
        """What ``interval`` accrued inside ``[lo, hi)``."""
        us = overlap(interval.start, interval.end, lo, hi) // _ONE_US
        if us == 0:
            return cls()
        return cls(
            instances=1,
            instance_us=us,
            vcpu_us=interval.vcpus * us,
            ram_mib_us=interval.ram_mib * us,
            disk_gib_us=interval.disk_gib * us,
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.instances + other.instances,
            self.instance_us + other.instance_us,
            self.vcpu_us + other.vcpu_us,
            self.ram_mib_us + other.ram_mib_us,
            self.disk_gib_us + other.disk_gib_us,
        )

    @property
    def instance_hours(self) -> Fraction:
        """Exact instance-hours."""
        return Fraction(self.instance_us, _US_PER_HOUR)

    @property
    def vcpu_hours(self) -> Fraction:
        """Exact vCPU-hours."""
        return Fraction(self.vcpu_us, _US_PER_HOUR)

    @property
    def ram_gib_hours(self) -> Fraction:
        """Exact RAM GiB-hours."""
        return Fraction(self.ram_mib_us, _US_PER_HOUR * _MIB_PER_GIB)

    def disk_gib_months(self, month_hours: int) -> Fraction:
        """Exact disk GiB-months in a month of ``month_hours`` hours."""
        return Fraction(self.disk_gib_us, _US_PER_HOUR * month_hours)


def metered_until(month: Month, now: datetime) -> datetime:
    """Where metering of ``month`` stops: its end, or ``now`` while it is still running
    (the start, for a month still to come)."""
    return max(month.start, min(month.end, now))


def usage_by_path(intervals: Iterable[Interval], month: Month, now: datetime) -> dict[str, Usage]:
    """Exact usage per ``org_path`` in ``month`` as of ``now`` (paths with no usage left
    out). An instance with several intervals (it was resized) counts as one instance."""
    lo, hi = month.start, metered_until(month, now)
    out: dict[str, Usage] = {}
    counted: set[str] = set()
    for interval in intervals:
        used = Usage.of(interval, lo, hi)
        if used.instances:
            if interval.instance_id in counted:
                used = replace(used, instances=0)
            counted.add(interval.instance_id)
            out[interval.org_path] = out.get(interval.org_path, Usage()) + used
    return out


# -- reported lines ---------------------------------------------------------------------------


#: Wide enough that sums and products of amounts (short decimals) are never rounded.
_EXACT = Context(prec=200)

#: A reported amount: a Decimal in Python, a plain JSON number (its decimal text).
Amount = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


def quantize(value: Fraction, places: int = QUANTITY_PLACES) -> Decimal:
    """``value`` rounded half-even to ``places`` decimal places, exactly."""
    return Decimal(f"{round(value * 10**places)}E-{places}")


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = _EXACT.add(total, value)
    return total


class Fees(BaseModel):
    """What one line (or a total) costs: per dimension, rounded to the cent, and in all."""

    model_config = ConfigDict(frozen=True)

    currency: str
    instance_hours: Amount
    vcpu_hours: Amount
    ram_gib_hours: Amount
    disk_gib_months: Amount
    total: Amount


class UsageLine(BaseModel):
    """One project's usage in one month (``fees`` once priced with :func:`fees`)."""

    model_config = ConfigDict(frozen=True)

    ministry: str
    agency: str
    project: str
    instances: int = Field(description="instances that held a host claim during the month")
    instance_hours: Amount
    vcpu_hours: Amount
    ram_gib_hours: Amount
    disk_gib_months: Amount
    fees: Fees | None = None


class UsageTotal(BaseModel):
    """The sum of the lines of one ministry (``ministry`` None: of every line)."""

    model_config = ConfigDict(frozen=True)

    ministry: str | None
    projects: int
    instances: int
    instance_hours: Amount
    vcpu_hours: Amount
    ram_gib_hours: Amount
    disk_gib_months: Amount
    fees: Fees | None = None


def _labels(org_path: str) -> tuple[str, str, str]:
    parts = [*org_path.split("/")[1:], "", "", ""]
    return parts[0], parts[1], parts[2]


def usage_lines(intervals: Iterable[Interval], month: Month, now: datetime) -> list[UsageLine]:
    """One line per project with usage in ``month`` (as of ``now``), in org order."""
    lines = []
    for path, used in sorted(usage_by_path(intervals, month, now).items()):
        ministry, agency, project = _labels(path)
        lines.append(
            UsageLine(
                ministry=ministry,
                agency=agency,
                project=project,
                instances=used.instances,
                instance_hours=quantize(used.instance_hours),
                vcpu_hours=quantize(used.vcpu_hours),
                ram_gib_hours=quantize(used.ram_gib_hours),
                disk_gib_months=quantize(used.disk_gib_months(month.hours)),
            )
        )
    return lines


def _sum_fees(items: Sequence[Fees | None]) -> Fees | None:
    """The sum of ``items``' fees, or None unless every item is priced in one currency."""
    if not items or any(f is None for f in items):
        return None
    priced = [f for f in items if f is not None]
    if len({f.currency for f in priced}) != 1:
        return None
    return Fees(
        currency=priced[0].currency,
        **{dim: _sum(getattr(f, dim) for f in priced) for dim in DIMENSIONS},
        total=_sum(f.total for f in priced),
    )


def _total(ministry: str | None, lines: Sequence[UsageLine]) -> UsageTotal:
    return UsageTotal(
        ministry=ministry,
        projects=len(lines),
        instances=sum(line.instances for line in lines),
        **{dim: _sum(getattr(line, dim) for line in lines) for dim in DIMENSIONS},
        fees=_sum_fees([line.fees for line in lines]),
    )


def totals(lines: Iterable[UsageLine]) -> list[UsageTotal]:
    """Per-ministry sums of the reported lines (so a total is exactly its lines' sum)."""
    by_ministry: dict[str, list[UsageLine]] = {}
    for line in lines:
        by_ministry.setdefault(line.ministry, []).append(line)
    return [_total(m, group) for m, group in sorted(by_ministry.items())]


def grand_total(lines: Sequence[UsageLine], currency: str | None = None) -> UsageTotal:
    """The sum of every line; with no lines, zero fees in ``currency`` if given."""
    total = _total(None, lines)
    if not lines and currency is not None:
        zero = Decimal("0.00")
        total = total.model_copy(
            update={"fees": Fees(currency=currency, **dict.fromkeys(DIMENSIONS, zero), total=zero)}
        )
    return total


# -- prices -----------------------------------------------------------------------------------

#: A unit price: non-negative, finite, at most 6 decimal places.
Price = Annotated[
    Decimal,
    Field(ge=0, allow_inf_nan=False, decimal_places=6),
    PlainSerializer(float, return_type=float, when_used="json"),
]


class PriceTable(BaseModel):
    """Prices per unit of each metered dimension, in one currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(
        pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. TWD", examples=["TWD"]
    )
    description: str = Field("", max_length=500)
    instance_hour: Price = Field(description="per instance-hour (a fixed cost per server)")
    vcpu_hour: Price = Field(description="per vCPU-hour")
    ram_gib_hour: Price = Field(description="per GiB of RAM per hour")
    disk_gib_month: Price = Field(description="per GiB of disk per month")

    def price(self, dimension: str) -> Decimal:
        """The unit price of ``dimension`` (one of :data:`DIMENSIONS`)."""
        value: Decimal = getattr(self, PRICE_FIELDS[dimension])
        return value


#: One thing wrong with a price table file, at ``file:line`` (1-based), in ``field``.
PriceProblem = FileProblem


class PriceTableError(InvalidFile):
    """A price table file is invalid; ``problems`` lists every problem, in file order."""

    def __init__(self, filename: str, problems: Iterable[FileProblem]) -> None:
        super().__init__(filename, problems, title=f"price table {filename}", code="prices.invalid")


def load_price_table(text: str, filename: str) -> PriceTable:
    """Parse a price table from YAML ``text``; every problem names ``filename``, the line
    and the field (all of them at once), as :class:`PriceTableError`."""
    return load_yaml_model(
        text,
        filename,
        PriceTable,
        expected="a mapping with currency, instance_hour, vcpu_hour, ram_gib_hour and "
        "disk_gib_month",
        error=PriceTableError,
        unknown_field=f"unknown field (allowed: {', '.join(PriceTable.model_fields)})",
        duplicate_note="first given on line",
    )


def fees(
    lines: Iterable[UsageLine], prices: PriceTable, *, quantum: Decimal | None = CENT
) -> list[UsageLine]:
    """``lines`` with their :class:`Fees`: reported quantity x unit price per dimension,
    each rounded half up to ``quantum`` (None: exact); the total is the sum of those."""
    priced = []
    for line in lines:
        amounts: dict[str, Decimal] = {}
        for dim in DIMENSIONS:
            amount = _EXACT.multiply(getattr(line, dim), prices.price(dim))
            amounts[dim] = (
                amount if quantum is None else amount.quantize(quantum, ROUND_HALF_UP, _EXACT)
            )
        line_fees = Fees(currency=prices.currency, **amounts, total=_sum(amounts.values()))
        priced.append(line.model_copy(update={"fees": line_fees}))
    return priced
