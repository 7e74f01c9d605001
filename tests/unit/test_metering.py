"""Metering (pure): months, exact clipping of claim intervals to a month, splitting a
period into months without losing a microsecond, per-project lines and totals, price
tables with file/line/field errors, and fees that are linear in usage and in price."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.domain.metering import (
    DIMENSIONS,
    Interval,
    Month,
    PriceTable,
    PriceTableError,
    Usage,
    UsageLine,
    fees,
    grand_total,
    load_price_table,
    metered_until,
    overlap,
    quantize,
    totals,
    usage_by_path,
    usage_lines,
)

EXAMPLE_PRICES = Path(__file__).parents[2] / "docs" / "examples" / "prices-2026.yaml"
UTC0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
US_PER_HOUR = 3_600_000_000
TRAFFIC = "gov/motc/thb/traffic"
DISASTER = "gov/moi/nfa/disaster"


def at(text: str) -> datetime:
    """``'2026-11-03 06:00'`` (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def interval(
    start: datetime,
    end: datetime | None,
    *,
    path: str = TRAFFIC,
    size: tuple[int, int, int] = (2, 4096, 40),
    ident: str = "i-1",
) -> Interval:
    vcpus, ram, disk = size
    return Interval(ident, path, vcpus, ram, disk, start, end)


def months_between(first: datetime, last: datetime) -> list[Month]:
    """Every month from the one holding ``first`` to the one holding ``last``."""
    month, out = Month.of(first), []
    while month.start <= last:
        out.append(month)
        month = month.next()
    return out


def total_usage(parts: list[Usage]) -> Usage:
    out = Usage()
    for part in parts:
        out = out + part
    return out


# -- strategies -------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))
sizes = st.tuples(st.integers(1, 256), st.integers(128, 4 * 1024 * 1024), st.integers(1, 64 * 1024))
months = st.builds(Month, st.integers(2024, 2028), st.integers(1, 12))
quantities = st.decimals(
    min_value=0, max_value=10**9, places=6, allow_nan=False, allow_infinity=False
)
prices_st = st.decimals(min_value=0, max_value=10**4, places=6, allow_nan=False)


@st.composite
def usage_line(draw: st.DrawFn) -> UsageLine:
    return UsageLine(
        ministry="motc",
        agency="thb",
        project="traffic",
        instances=draw(st.integers(0, 1000)),
        **{dim: draw(quantities) for dim in DIMENSIONS},
    )


@st.composite
def price_table(draw: st.DrawFn) -> PriceTable:
    return PriceTable(
        currency="TWD",
        instance_hour=draw(prices_st),
        vcpu_hour=draw(prices_st),
        ram_gib_hour=draw(prices_st),
        disk_gib_month=draw(prices_st),
    )


# -- months -----------------------------------------------------------------------------------


def test_month_bounds_hours_and_text() -> None:
    nov = Month.parse("2026-11")
    assert (nov.start, nov.end) == (at("2026-11-01 00:00"), at("2026-12-01 00:00"))
    assert (nov.days, nov.hours, str(nov)) == (30, 720, "2026-11")
    assert Month.parse("2026-12").end == at("2027-01-01 00:00")
    assert Month.parse("2028-02").hours == 29 * 24  # leap year
    assert Month.parse("2026-02").hours == 28 * 24
    assert Month.parse(" 2026-03 ") == Month(2026, 3)
    assert Month.of(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == nov
    taipei = datetime(2026, 12, 1, 7, 0, tzinfo=timezone(timedelta(hours=8)))
    assert Month.of(taipei) == nov  # 2026-11-30 23:00 UTC: months are UTC


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-13", "month 01-12"),
        ("2026-00", "month 01-12"),
        ("26-11", "YYYY-MM"),
        ("2026-1", "YYYY-MM"),
        ("2026/11", "YYYY-MM"),
        ("november", "YYYY-MM"),
        ("", "YYYY-MM"),
        ("0001-01", "year 1970-9998"),
        ("9999-12", "year 1970-9998"),
    ],
)
def test_bad_months_are_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        Month.parse(text)
    assert "e.g. 2026-11" in str(caught.value)


@given(months)
def test_months_tile_time(month: Month) -> None:
    assert month.end == month.next().start
    assert month.end - month.start == month.hours * HOUR
    assert Month.parse(str(month)) == month
    assert Month.of(month.start) == month
    assert Month.of(month.end - timedelta(microseconds=1)) == month


# -- clipping -----------------------------------------------------------------------------------


@given(instants, durations, months)
def test_clipping_is_exact(start: datetime, length: timedelta, month: Month) -> None:
    end = start + length
    clipped = overlap(start, end, month.start, month.end)
    # The clipped span is exactly the set of microseconds in both intervals.
    first, last = max(start, month.start), min(end, month.end)
    assert clipped == (last - first if last > first else timedelta(0))
    assert timedelta(0) <= clipped <= min(length, month.end - month.start)
    used = Usage.of(interval(start, end, size=(3, 1536, 7)), month.start, month.end)
    us = clipped // timedelta(microseconds=1)
    assert (used.instance_us, used.vcpu_us, used.ram_mib_us, used.disk_gib_us) == (
        us,
        3 * us,
        1536 * us,
        7 * us,
    )
    assert used.instances == (1 if us else 0)
    if month.start <= start and end <= month.end:
        assert clipped == length  # inside: all of it
    if end <= month.start or start >= month.end:
        assert clipped == timedelta(0)  # outside: none of it


@given(instants, durations, sizes)
def test_splitting_a_period_into_months_sums_to_the_whole(
    start: datetime, length: timedelta, size: tuple[int, int, int]
) -> None:
    end = start + length
    claim = interval(start, end, size=size)
    spanned = months_between(start, end)
    parts = [Usage.of(claim, m.start, m.end) for m in spanned]
    whole = Usage.of(claim, start, end)
    summed = total_usage(parts)
    assert (summed.instance_us, summed.vcpu_us, summed.ram_mib_us, summed.disk_gib_us) == (
        whole.instance_us,
        whole.vcpu_us,
        whole.ram_mib_us,
        whole.disk_gib_us,
    )
    assert summed.instance_hours == Fraction(length // timedelta(microseconds=1), US_PER_HOUR)
    # GiB-months weigh each month by its own length: back in GiB-hours they add up exactly.
    assert sum(
        p.disk_gib_months(m.hours) * m.hours for p, m in zip(parts, spanned, strict=True)
    ) == (size[2] * whole.instance_hours)
    # Reported (rounded) figures: at most half a unit in the 6th place off per month.
    reported = [
        usage_lines([claim], m, end + timedelta(days=1))[0].vcpu_hours
        for m, p in zip(spanned, parts, strict=True)
        if p.instances
    ]
    assert abs(sum(reported) - Decimal(whole.vcpu_us) / US_PER_HOUR) <= Decimal("0.0000005") * len(
        reported
    )


@given(instants, st.integers(0, 2000), months)
def test_a_live_claim_counts_up_to_now_only(start: datetime, hours: int, month: Month) -> None:
    now = start + hours * HOUR
    live = usage_by_path([interval(start, None)], month, now)
    ended = usage_by_path([interval(start, now)], month, now + 1000 * HOUR)
    assert live == ended  # a live claim as of now == one that ended now
    until = metered_until(month, now)
    assert month.start <= until <= month.end
    if now <= month.start:
        assert live == {}


def test_a_whole_month_is_its_size_and_a_disk_kept_all_month_is_its_gib() -> None:
    for text in ("2026-02", "2026-10", "2026-11"):
        month = Month.parse(text)
        claim = interval(month.start - HOUR, month.end + HOUR, size=(2, 4096, 40))
        (line,) = usage_lines([claim], month, month.end + HOUR)
        assert line.instance_hours == month.hours
        assert line.vcpu_hours == 2 * month.hours
        assert line.ram_gib_hours == 4 * month.hours
        assert line.disk_gib_months == 40


def test_lines_group_by_project_and_label_the_tree() -> None:
    nov = Month.parse("2026-11")
    claims = [
        # started in October: only the November part counts (720 h)
        interval(at("2026-10-31 18:00"), None, ident="web"),
        # 10.5 h on the 10th
        interval(at("2026-11-10 00:00"), at("2026-11-10 10:30"), size=(1, 1024, 10), ident="api"),
        # into December: 24 h of November
        interval(
            at("2026-11-30 00:00"),
            at("2026-12-05 00:00"),
            path=DISASTER,
            size=(4, 8192, 80),
            ident="db",
        ),
        # entirely in October, and one that starts in December: nothing
        interval(at("2026-10-01 00:00"), at("2026-10-02 00:00"), ident="old"),
        interval(at("2026-12-01 00:00"), None, path=DISASTER, ident="new"),
    ]
    moi, motc = usage_lines(claims, nov, at("2027-01-15 00:00"))
    assert (moi.ministry, moi.agency, moi.project, moi.instances) == ("moi", "nfa", "disaster", 1)
    assert [moi.instance_hours, moi.vcpu_hours, moi.ram_gib_hours] == [24, 96, 192]
    assert moi.disk_gib_months == quantize(Fraction(80 * 24, 720))  # 2.666667
    assert str(moi.disk_gib_months) == "2.666667"
    assert (motc.project, motc.instances) == ("traffic", 2)
    assert motc.instance_hours == Decimal("730.5")
    assert motc.vcpu_hours == Decimal(2 * 720 + 10.5)
    assert motc.ram_gib_hours == Decimal(4 * 720 + 10.5)
    assert motc.disk_gib_months == quantize(Fraction(40 * 1440 + 10 * 21, 1440))  # 10.5 h = 21/2


def test_month_to_date_and_future_months() -> None:
    nov = Month.parse("2026-11")
    claims = [interval(at("2026-10-31 18:00"), None)]
    (line,) = usage_lines(claims, nov, at("2026-11-03 06:00"))
    assert line.instance_hours == 54
    assert line.disk_gib_months == quantize(Fraction(40 * 54, 720))  # still / 720 h
    assert metered_until(nov, at("2026-11-03 06:00")) == at("2026-11-03 06:00")
    assert usage_lines(claims, Month.parse("2027-01"), at("2026-11-03 06:00")) == []
    assert metered_until(Month.parse("2027-01"), at("2026-11-03 06:00")) == at("2027-01-01 00:00")


# -- totals -------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["moi", "motc", "moe"]), usage_line()), max_size=8))
def test_totals_are_the_sums_of_their_lines(items: list[tuple[str, UsageLine]]) -> None:
    lines = [
        line.model_copy(update={"ministry": m, "project": f"p{i}"})
        for i, (m, line) in enumerate(items)
    ]
    by_ministry = {t.ministry: t for t in totals(lines)}
    assert set(by_ministry) == {line.ministry for line in lines}
    for ministry, total in by_ministry.items():
        mine = [line for line in lines if line.ministry == ministry]
        assert total.projects == len(mine)
        assert total.instances == sum(line.instances for line in mine)
        for dim in DIMENSIONS:
            assert getattr(total, dim) == sum(getattr(line, dim) for line in mine)
    everything = grand_total(lines)
    for dim in DIMENSIONS:
        assert getattr(everything, dim) == sum(getattr(t, dim) for t in by_ministry.values())
    assert everything.fees is None  # not priced


# -- fees ---------------------------------------------------------------------------------------


def plus(a: UsageLine, b: UsageLine) -> UsageLine:
    return a.model_copy(
        update={dim: getattr(a, dim) + getattr(b, dim) for dim in DIMENSIONS}
        | {"instances": a.instances + b.instances}
    )


@settings(max_examples=200, deadline=None)
@given(usage_line(), usage_line(), price_table())
def test_fees_are_linear_in_usage(a: UsageLine, b: UsageLine, prices: PriceTable) -> None:
    (fa, fb, fab) = fees([a, b, plus(a, b)], prices, quantum=None)
    assert fa.fees is not None
    assert fb.fees is not None
    assert fab.fees is not None
    for dim in (*DIMENSIONS, "total"):
        assert getattr(fab.fees, dim) == getattr(fa.fees, dim) + getattr(fb.fees, dim)
    for dim in DIMENSIONS:
        assert getattr(fa.fees, dim) == getattr(a, dim) * prices.price(dim)
    # Rounded to the cent, each dimension is off by at most one cent from linear.
    (ra, rb, rab) = fees([a, b, plus(a, b)], prices)
    assert ra.fees is not None
    assert rb.fees is not None
    assert rab.fees is not None
    for dim in DIMENSIONS:
        cents = getattr(rab.fees, dim) - getattr(ra.fees, dim) - getattr(rb.fees, dim)
        assert abs(cents) <= Decimal("0.01")
        assert getattr(ra.fees, dim) == getattr(ra.fees, dim).quantize(Decimal("0.01"))
    assert ra.fees.total == sum(getattr(ra.fees, dim) for dim in DIMENSIONS)


@settings(max_examples=200, deadline=None)
@given(usage_line(), price_table(), st.integers(0, 1000))
def test_fees_are_linear_in_price(line: UsageLine, prices: PriceTable, k: int) -> None:
    scaled = prices.model_copy(
        update={
            field: getattr(prices, field) * k
            for field in PriceTable.model_fields
            if field not in ("currency", "description")
        }
    )
    (base,) = fees([line], prices, quantum=None)
    (times_k,) = fees([line], scaled, quantum=None)
    assert base.fees is not None
    assert times_k.fees is not None
    assert times_k.fees.total == k * base.fees.total


def test_fees_round_half_up_per_dimension_and_total_the_rounded_fees() -> None:
    line = UsageLine(
        ministry="motc",
        agency="thb",
        project="traffic",
        instances=1,
        instance_hours=Decimal("10.5"),
        vcpu_hours=Decimal("0.01"),
        ram_gib_hours=Decimal("1"),
        disk_gib_months=Decimal("0.145833"),
    )
    prices = PriceTable(
        currency="TWD",
        instance_hour=Decimal("0.01"),  # 0.105 -> 0.11 (half up)
        vcpu_hour=Decimal("0.5"),  # 0.005 -> 0.01
        ram_gib_hour=Decimal("0.004"),  # 0.004 -> 0.00
        disk_gib_month=Decimal("3.2"),  # 0.4666656 -> 0.47
    )
    (priced,) = fees([line], prices)
    assert priced.fees is not None
    got = [getattr(priced.fees, d) for d in DIMENSIONS]
    assert got == [Decimal("0.11"), Decimal("0.01"), Decimal("0.00"), Decimal("0.47")]
    assert priced.fees.total == Decimal("0.59")
    assert priced.fees.currency == "TWD"
    total = grand_total([priced, priced])
    assert total.fees is not None
    assert total.fees.total == Decimal("1.18")
    empty = grand_total([], "TWD")
    assert empty.fees is not None
    assert empty.fees.total == 0


def test_json_numbers_keep_the_decimal_text() -> None:
    line = UsageLine(
        ministry="motc",
        agency="thb",
        project="traffic",
        instances=1,
        instance_hours=Decimal("730.500000"),
        vcpu_hours=Decimal("0.000001"),
        ram_gib_hours=Decimal("123456789.123457"),
        disk_gib_months=Decimal("40.145833"),
    )
    text = line.model_dump_json()
    assert '"instance_hours":730.5' in text
    assert json.loads(text)["vcpu_hours"] == 1e-6
    assert '"ram_gib_hours":123456789.123457' in text
    assert UsageLine.model_validate_json(text) == line


# -- price tables -------------------------------------------------------------------------------


def test_the_example_price_table_loads_with_plausible_twd_prices() -> None:
    prices = load_price_table(EXAMPLE_PRICES.read_text(encoding="utf-8"), str(EXAMPLE_PRICES))
    assert prices.currency == "TWD"
    for dim in DIMENSIONS:
        assert 0 < prices.price(dim) < 10
    # The worked example in the file's header: m1.medium for a 30-day month.
    month = Month.parse("2026-11")
    claim = interval(month.start, month.end, size=(2, 4096, 40))
    (line,) = fees(usage_lines([claim], month, month.end), prices)
    assert line.fees is not None
    assert line.fees.total == Decimal("2432.00")
    assert "2,432" in EXAMPLE_PRICES.read_text(encoding="utf-8")


def price_errors(text: str) -> list[str]:
    with pytest.raises(PriceTableError) as caught:
        load_price_table(textwrap.dedent(text), "prices.yaml")
    err = caught.value
    assert err.code == "prices.invalid"
    assert err.message.startswith("price table prices.yaml is invalid:")
    assert [p["line"] for p in err.details["problems"]] == [p.line for p in err.problems]
    return [str(p) for p in err.problems]


def test_price_table_errors_name_file_line_and_field_all_at_once() -> None:
    found = price_errors(
        """\
        currency: twd
        instance_hour: 0.5
        vcpu_hour: -1
        ram_gib_hour: cheap
        disk_gib_month: 1.1234567
        discount: 10
        """
    )
    assert found == [
        "prices.yaml:1: field 'currency': String should match pattern '^[A-Z]{3}$' (got 'twd')",
        "prices.yaml:3: field 'vcpu_hour': Input should be greater than or equal to 0 (got -1)",
        "prices.yaml:4: field 'ram_gib_hour': Input should be a valid decimal (got 'cheap')",
        "prices.yaml:5: field 'disk_gib_month': Decimal input should have no more than 6 "
        "decimal places (got 1.1234567)",
        "prices.yaml:6: field 'discount': unknown field (allowed: currency, description, "
        "instance_hour, vcpu_hour, ram_gib_hour, disk_gib_month)",
    ]


def test_price_table_missing_duplicate_and_malformed() -> None:
    assert price_errors("currency: TWD\nvcpu_hour: 1\n") == [
        "prices.yaml:1: field 'disk_gib_month': Field required",
        "prices.yaml:1: field 'instance_hour': Field required",
        "prices.yaml:1: field 'ram_gib_hour': Field required",
    ]
    dup = """\
        currency: TWD
        instance_hour: 0.5
        vcpu_hour: 0.85
        ram_gib_hour: 0.25
        disk_gib_month: 3.2
        vcpu_hour: 0.085
        """
    assert price_errors(dup) == [
        "prices.yaml:6: field 'vcpu_hour': duplicate key (first given on line 3)"
    ]
    assert price_errors("")[0].startswith("prices.yaml:1: expected a mapping")
    assert "got list" in price_errors("- 1\n- 2\n")[0]
    assert price_errors("currency: [TWD\n")[0].startswith("prices.yaml:2: not valid YAML")
    assert (
        "finite"
        in price_errors(
            "currency: TWD\ninstance_hour: .nan\nvcpu_hour: 1\nram_gib_hour: 1\ndisk_gib_month: 1\n"
        )[0]
    )


def test_quoted_prices_keep_their_decimal_text() -> None:
    prices = load_price_table(
        'currency: TWD\ninstance_hour: "0.1"\nvcpu_hour: 0.1\nram_gib_hour: 0\ndisk_gib_month: 3\n',
        "p.yaml",
    )
    assert prices.instance_hour == Decimal("0.1")
    assert prices.vcpu_hour == Decimal("0.1")  # a YAML float, read by its text
    assert prices.ram_gib_hour == 0
    assert prices.model_dump(mode="json")["disk_gib_month"] == 3.0


def test_the_last_supported_month_has_an_end() -> None:
    assert Month(9998, 12).end == datetime(9999, 1, 1, tzinfo=UTC)
