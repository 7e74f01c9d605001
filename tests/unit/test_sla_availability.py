"""SLA arithmetic on crafted histories: month edges, mid-month creation and deletion,
tenant stops, host failures while stopped, reboots, overlapping maintenance windows,
provisioning percentiles, incidents and the report's aggregation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.domain.maintenance import MaintenanceScope, MaintenanceWindow
from controlplane.domain.metering import Month
from controlplane.sla.availability import ZERO, account, segments
from controlplane.sla.history import InstanceHistory, StateEvent
from controlplane.sla.incidents import group
from controlplane.sla.provisioning import Outcome, percentile, provisioning
from controlplane.sla.report import ReportInput, build_report
from controlplane.sla.targets import SlaTargets

NOV = Month(2026, 11)
LO, HI = NOV.start, NOV.end
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
H1, H2 = "host-1", "host-2"


def at(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def ev(when: datetime, state: str, power: str = "running", host: str | None = H1) -> StateEvent:
    return StateEvent(when, state, power, host, "tpe-1" if host else None)


def hist(
    *events: StateEvent, iid: str = "i-1", path: str = "gov/moi/nfa/disaster"
) -> InstanceHistory:
    return InstanceHistory(iid, iid, path, events[0].at, tuple(events))


def window(start: datetime, end: datetime, *, host: str | None = None) -> MaintenanceWindow:
    return MaintenanceWindow(
        id=f"w-{start:%d%H%M}",
        scope=MaintenanceScope.HOST if host else MaintenanceScope.DC,
        datacentre="tpe-1",
        host_id=host,
        starts_at=start,
        ends_at=end,
        reason="patching",
        created_by="admin",
        created_at=start,
    )


def launched(created: datetime, running: datetime) -> list[StateEvent]:
    return [ev(created, "PENDING", host=None), ev(created, "SCHEDULED"), ev(running, "RUNNING")]


# -- eligibility and month edges ------------------------------------------------------------


def test_running_all_month_is_fully_available() -> None:
    acc = account(hist(*launched(at(1, month=10), at(1, 1, month=10))), LO, HI)
    assert acc.eligible == HI - LO == timedelta(days=30)
    assert (acc.downtime, acc.excluded, acc.availability) == (ZERO, ZERO, Fraction(1))


def test_outage_across_the_month_start_is_split_at_the_edge() -> None:
    h = hist(
        *launched(at(20, month=10), at(20, 1, month=10)),
        ev(at(31, 23, 0, month=10), "ERROR"),
        ev(at(1, 2), "RUNNING"),
    )
    nov = account(h, LO, HI)
    assert nov.downtime == 2 * HOUR
    assert nov.availability == 1 - Fraction(2, 30 * 24)
    october = Month(2026, 10)
    oct_acc = account(h, october.start, october.end)
    assert oct_acc.downtime == HOUR
    (outage,) = oct_acc.outages
    assert outage.open_ended  # still down when October ended


def test_created_mid_month_counts_from_first_running_only() -> None:
    # Accepted on the 10th at 00:00, running at 00:30: provisioning is not downtime.
    acc = account(hist(*launched(at(10), at(10, 0, 30))), LO, HI)
    assert acc.eligible == HI - at(10, 0, 30)
    assert acc.downtime == ZERO


def test_deleted_mid_month_stops_counting_at_the_delete_request() -> None:
    h = hist(
        *launched(at(1, month=10), at(1, 1, month=10)),
        ev(at(15), "ERROR"),
        ev(at(15, 1), "DELETING"),
        ev(at(15, 2), "DELETED"),
    )
    acc = account(h, LO, HI)
    assert acc.eligible == at(15, 1) - LO
    assert acc.downtime == HOUR  # ERROR until the tenant asked for the delete


def test_a_failed_build_never_counts_as_downtime() -> None:
    h = hist(
        ev(at(3), "PENDING", host=None), ev(at(3, 0, 1), "SCHEDULED"), ev(at(3, 0, 2), "ERROR")
    )
    acc = account(h, LO, HI)
    assert (acc.eligible, acc.downtime, acc.availability) == (ZERO, ZERO, None)
    assert provisioning(h).outcome is Outcome.FAILED


# -- tenant intent ----------------------------------------------------------------------------


def test_tenant_stop_and_the_start_that_follows_do_not_count() -> None:
    h = hist(
        *launched(at(1, month=10), at(1, 1, month=10)),
        ev(at(5), "RUNNING", power="stopped"),  # stop requested
        ev(at(5, 0, 1), "STOPPED", power="stopped"),
        ev(at(6), "STOPPED"),  # start requested
        ev(at(6, 0, 3), "RUNNING"),  # ... and carried out
    )
    acc = account(h, LO, HI)
    assert acc.eligible == (HI - LO) - (at(6, 0, 3) - at(5))
    assert acc.downtime == ZERO


def test_host_down_while_the_tenant_had_stopped_the_vm_is_not_counted() -> None:
    h = hist(
        *launched(at(1, month=10), at(1, 1, month=10)),
        ev(at(5), "STOPPED", power="stopped"),
        ev(at(7), "UNKNOWN", power="stopped"),  # the host went DOWN
        ev(at(8), "STOPPED", power="stopped"),  # it came back
        ev(at(9), "STOPPED"),
        ev(at(9, 0, 2), "RUNNING"),
    )
    acc = account(h, LO, HI)
    assert acc.downtime == ZERO
    assert acc.outages == ()


def test_host_down_while_running_counts_until_it_runs_again() -> None:
    h = hist(
        *launched(at(1, month=10), at(1, 1, month=10)),
        ev(at(7), "UNKNOWN"),
        ev(at(7, 0, 10), "ERROR"),  # state changes during one outage: one outage
        ev(at(7, 0, 40), "RUNNING"),
    )
    acc = account(h, LO, HI)
    assert acc.downtime == 40 * MIN
    (outage,) = acc.outages
    assert (outage.start, outage.end, outage.state) == (at(7), at(7, 0, 40), "UNKNOWN")


def test_a_reboot_that_rebuilds_counts_its_building_time() -> None:
    h = hist(
        *launched(at(1, month=10), at(1, 1, month=10)),
        ev(at(12, 3), "BUILDING"),
        ev(at(12, 3, 4), "RUNNING"),
    )
    assert account(h, LO, HI).downtime == 4 * MIN


def test_stopped_although_the_tenant_wanted_it_running_is_downtime() -> None:
    h = hist(
        *launched(at(1, month=10), at(1, 1, month=10)),
        ev(at(12), "STOPPED"),  # the domain shut off by itself (host crash, OOM)
        ev(at(12, 1), "RUNNING"),
    )
    assert account(h, LO, HI).downtime == HOUR


# -- maintenance windows ----------------------------------------------------------------------


def test_overlapping_windows_are_excluded_once() -> None:
    h = hist(*launched(at(1, month=10), at(1, 1, month=10)), ev(at(10, 1), "UNKNOWN"),
             ev(at(10, 5), "RUNNING"))  # fmt: skip
    windows = [window(at(10), at(10, 3)), window(at(10, 2), at(10, 4), host=H1)]
    acc = account(h, LO, HI, windows)
    assert acc.excluded == 4 * HOUR  # 00:00-04:00 once, not 3 h + 2 h
    assert acc.downtime == HOUR  # 04:00-05:00 is outside both windows
    assert acc.counted == (HI - LO) - 4 * HOUR
    (outage,) = acc.outages
    assert (outage.start, outage.end) == (at(10, 4), at(10, 5))


def test_windows_of_other_hosts_and_data_centres_do_not_apply() -> None:
    h = hist(*launched(at(1, month=10), at(1, 1, month=10)), ev(at(10, 1), "ERROR"),
             ev(at(10, 2), "RUNNING"))  # fmt: skip
    other_dc = window(at(10), at(11)).model_copy(update={"datacentre": "khh-1"})
    other_host = window(at(10), at(11), host=H2)
    acc = account(h, LO, HI, [other_dc, other_host])
    assert (acc.excluded, acc.downtime) == (ZERO, HOUR)


def test_a_window_follows_the_instance_to_its_new_host() -> None:
    h = hist(
        *launched(at(1, month=10), at(1, 1, month=10)),
        ev(at(10), "UNKNOWN"),
        ev(at(10, 1), "SCHEDULED", host=H2),  # evacuated
        ev(at(10, 2), "RUNNING", host=H2),
    )
    acc = account(h, LO, HI, [window(at(10, 1), at(10, 3), host=H2)])
    assert acc.downtime == HOUR  # only the hour on H1
    assert acc.excluded == 2 * HOUR


def test_a_window_while_the_tenant_had_stopped_excludes_nothing() -> None:
    h = hist(*launched(at(1, month=10), at(1, 1, month=10)), ev(at(9), "STOPPED", power="stopped"))
    acc = account(h, LO, HI, [window(at(10), at(11))])
    assert acc.excluded == ZERO
    assert acc.eligible == at(9) - LO


# -- invariants -------------------------------------------------------------------------------

STATES = ["RUNNING", "RUNNING", "ERROR", "UNKNOWN", "BUILDING", "STOPPED"]


@st.composite
def histories(draw: st.DrawFn) -> InstanceHistory:
    start = at(25, month=10)
    events = [ev(start, "PENDING", host=None)]
    when = start
    for _ in range(draw(st.integers(0, 15))):
        when += timedelta(minutes=draw(st.integers(0, 4000)))
        events.append(
            ev(when, draw(st.sampled_from(STATES)), draw(st.sampled_from(["running", "stopped"])),
               draw(st.sampled_from([H1, H2])))
        )  # fmt: skip
    return hist(*events)


@given(histories(), st.integers(0, 29), st.integers(1, 48))
def test_figures_stay_within_bounds_and_split_exactly(
    h: InstanceHistory, day: int, hours: int
) -> None:
    w = [window(LO + timedelta(days=day), LO + timedelta(days=day, hours=hours))]
    whole = account(h, LO, HI, w)
    assert ZERO <= whole.downtime <= whole.counted <= whole.eligible <= HI - LO
    assert sum((o.length for o in whole.outages), ZERO) == whole.downtime
    value = whole.availability
    assert value is None or 0 <= value <= 1
    mid = min(LO + timedelta(days=day, hours=hours), HI)
    first, second = account(h, LO, mid, w), account(h, mid, HI, w)
    assert first.eligible + second.eligible == whole.eligible
    assert first.downtime + second.downtime == whole.downtime
    assert first.excluded + second.excluded == whole.excluded


def test_segments_skip_events_superseded_at_the_same_instant() -> None:
    h = hist(ev(at(1), "PENDING", host=None), ev(at(1), "SCHEDULED"), ev(at(1, 1), "RUNNING"))
    assert [s.state for s in segments(h)] == ["SCHEDULED", "RUNNING"]


# -- provisioning and incidents ---------------------------------------------------------------


def test_percentiles_use_nearest_rank() -> None:
    values = [timedelta(minutes=m) for m in range(1, 21)]
    assert percentile(values, 50) == 10 * MIN
    assert percentile(values, 95) == 19 * MIN
    assert percentile(values, 100) == 20 * MIN
    assert percentile([], 95) is None


def test_simultaneous_outages_on_one_host_are_one_incident() -> None:
    a = hist(*launched(at(1, month=10), at(1, 1, month=10)), ev(at(7), "UNKNOWN"),
             ev(at(7, 0, 30), "RUNNING"), iid="a")  # fmt: skip
    b = hist(*launched(at(1, month=10), at(1, 1, month=10)), ev(at(7, 0, 0, ), "UNKNOWN"),
             ev(at(7, 0, 50), "RUNNING"), iid="b")  # fmt: skip
    c = hist(*launched(at(1, month=10), at(1, 1, month=10)), ev(at(20), "ERROR"),
             ev(at(20, 0, 5), "RUNNING"), iid="c")  # fmt: skip
    outages = [o for h in (a, b, c) for o in account(h, LO, HI).outages]
    first, second = group(outages)
    assert (first.host_id, first.instance_ids, first.start, first.end) == (
        H1, ["a", "b"], at(7), at(7, 0, 50),
    )  # fmt: skip
    assert first.time_to_recover == 50 * MIN
    assert first.downtime == 80 * MIN
    assert second.instance_ids == ["c"]


# -- the report -------------------------------------------------------------------------------

TARGETS = SlaTargets.model_validate(
    {
        "default_class": "bronze",
        "classes": {
            "gold": {"availability_pct": 99.95, "provisioning_p95_minutes": 5},
            "bronze": {"availability_pct": 99.5, "provisioning_p95_minutes": 30},
        },
        "ministries": {"moi": "gold"},
    }
)


def test_report_aggregates_per_org_and_measures_against_the_class() -> None:
    down = hist(*launched(at(1, month=10), at(1, 1, month=10)), ev(at(7), "UNKNOWN"),
                ev(at(7, 1), "RUNNING"), iid="down")  # fmt: skip
    fine = hist(*launched(at(2), at(2, 0, 12)), iid="fine", path="gov/moi/npa/police")
    other = hist(*launched(at(3), at(3, 0, 1)), iid="other", path="gov/motc/thb/traffic")
    report = build_report(
        ReportInput(
            month=NOV, now=at(1, month=12), scope="all", ministries=["moi", "motc"],
            histories=[down, fine, other], windows=[], targets=TARGETS,
            host_names={H1: "tpe-1-h01"},
        )
    )  # fmt: skip
    moi, motc = report.ministries
    assert (moi.ministry, moi.target.service_class, moi.instances) == ("moi", "gold", 2)
    eligible = 30 * 24 * 60 + (HI - at(2, 0, 12)) / MIN
    assert moi.availability.eligible_minutes == round(eligible, 3)
    assert moi.availability.downtime_minutes == 60
    assert moi.attained is False  # 60 min down of ~ 58,000: 99.897 % < 99.95 %
    assert moi.error_budget.allowed_minutes == round(eligible * 0.0005, 3)
    assert moi.error_budget.remaining_minutes < 0
    kinds = [b.kind for b in moi.breaches]
    assert kinds == ["availability", "provisioning"]  # and 12 min to launch > 5 min
    assert moi.breaches[0].incidents == ["tpe-1-h01@2026-11-07T00:00Z"]
    assert moi.provisioning.accepted == 1
    assert moi.provisioning.p95_minutes == 12
    assert [o.path for o in moi.orgs] == [
        "gov/moi/nfa", "gov/moi/nfa/disaster", "gov/moi/npa", "gov/moi/npa/police"
    ]  # fmt: skip
    assert moi.orgs[0].downtime_minutes == 60
    assert moi.orgs[2].availability_pct == 100.0
    (worst,) = moi.worst_instances
    assert (worst.instance_id, worst.outages, worst.meets_target) == ("down", 1, False)
    assert motc.target.service_class == "bronze"
    assert (motc.attained, motc.breaches) == (True, [])
    assert report.attained == 1
    assert report.breached == 1
    (incident,) = report.incidents
    assert (incident.host_name, incident.ministries, incident.ongoing) == ("tpe-1-h01", ["moi"],
                                                                          False)  # fmt: skip
    assert report.complete


def test_report_without_instances_says_there_is_no_data() -> None:
    report = build_report(ReportInput(NOV, at(15), "moe", ["moe"], [], [], TARGETS, {}))
    (moe,) = report.ministries
    assert moe.availability.availability_pct is None
    assert moe.attained is None
    assert moe.error_budget.remaining_pct is None
    assert moe.provisioning.p95_minutes is None
    assert not report.complete
    assert report.as_of == at(15)


@pytest.mark.parametrize("month", [Month(2026, 2), Month(2028, 2), Month(2026, 12)])
def test_month_lengths(month: Month) -> None:
    h = hist(*launched(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, 1, tzinfo=UTC)))
    assert account(h, month.start, month.end).eligible == timedelta(days=month.days)
