"""Quota invariants on the real store (SQLite in a temp file), driven by Hypothesis.

Whatever sequence of limit changes (raising, lowering below usage, removing), creates,
deletions (of PENDING and of placed instances, confirmed by the agent or not), power
actions and pending retries happens:

* the store accepts a create exactly when the pure engine (``quotas.check``) does, and
  refuses it with exactly the engine's violations;
* the stored usage of every node equals the engine's pure model (``quotas.charge`` and
  ``quotas.release`` applied to the same history) and the sum of the node's live
  (non-DELETED) instances, and ``verify`` finds no drift;
* no level is ever above a limit it had when a charge was accepted;
* one soft-threshold event is stored per crossing the engine reports.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from agents.protocol.v1 import ActualState, InstanceStatus, RegisterRequest
from controlplane.domain.datacentre import DataCentre
from controlplane.domain.flavor import Flavor
from controlplane.domain.image import Image
from controlplane.domain.instance import InstanceState
from controlplane.domain.quota import QuotaExceeded
from controlplane.domain.resources import Resources
from controlplane.store import Store, open_store
from quotas import DEFAULT_SOFT_THRESHOLD, Limits, Usage, charge, check, release

S = InstanceState
#: gov -> m1 -> a1 -> {p1, p2}; m1 -> a2 -> p3; gov -> m2 -> a3 -> p4
TREE: tuple[tuple[str, str], ...] = (
    ("m1", "gov"),
    ("a1", "m1"),
    ("p1", "a1"),
    ("p2", "a1"),
    ("a2", "m1"),
    ("p3", "a2"),
    ("m2", "gov"),
    ("a3", "m2"),
    ("p4", "a3"),
)
PROJECTS = ("p1", "p2", "p3", "p4")
FLAVORS = {
    "tiny": (1, 512, 1),
    "small": (1, 1024, 10),
    "medium": (2, 4096, 40),
    "large": (4, 8192, 80),
}
DIMS = ("instances", "vcpus", "ram_mib", "disk_gib")
#: Limits are drawn as 0..10 of these steps: from forbidding a dimension to ample room.
STEP = {"instances": 1, "vcpus": 2, "ram_mib": 2048, "disk_gib": 40}


class Clock:
    """A clock that ticks a millisecond per reading (single-threaded use)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def fresh_store(template: Path, directory: Path) -> tuple[Store, str]:
    """A new store in its own file with the tree, the flavors and one host (its id):
    room for some instances only, so some requests wait PENDING (and count)."""
    path = directory / f"{uuid.uuid4().hex}.db"
    shutil.copyfile(template, path)
    store = open_store(f"sqlite:///{path}", clock=Clock())
    store.datacentres.create(DataCentre(code="tpe-1", name="Taipei 1"))
    for name, (vcpus, ram, disk) in FLAVORS.items():
        store.flavors.create(Flavor(name=name, vcpus=vcpus, ram_mib=ram, disk_gib=disk))
    store.images.create(Image(name="cirros", path="/img/cirros.qcow2"))
    for code, parent in TREE:
        store.orgs.create(code, code.upper(), parent)
    token, _ = store.hosts.issue_bootstrap_token("tpe-1", "admin")
    host, _credential = store.hosts.register(
        RegisterRequest(
            bootstrap_token=token,
            name="h0",
            capacity=Resources(vcpus=4, ram_mib=512 + 12_288, disk_gib=200),
            libvirt_uri="test:///default",
        )
    )
    return store, host.id


limit_steps = st.dictionaries(
    st.sampled_from(DIMS),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10)),
    min_size=1,
    max_size=3,
)


class QuotaMachine(RuleBasedStateMachine):
    """Random limits, creates, deletions, power actions and retries against a pure model."""

    instances = Bundle("instances")

    #: Set by the test: the migrated SQLite template and a directory for the copies.
    template: Path
    directory: Path

    def __init__(self) -> None:
        super().__init__()
        self.store, self.host = fresh_store(self.template, self.directory)
        orgs = {o.code: o for o in self.store.orgs.list("gov")}
        self.paths = {code: org.path.split("/") for code, org in orgs.items()}
        self.kinds = {code: org.kind.value for code, org in orgs.items()}
        self.usage: dict[str, Usage] = {}
        self.limits: dict[str, Limits] = {}
        self.live: dict[str, tuple[str, Usage]] = {}  # id -> (project, amount)
        self.deleting: set[str] = set()
        self.events = 0
        self.names = itertools.count()

    def teardown(self) -> None:
        self.store.close()

    # -- rules -----------------------------------------------------------------------------

    @rule(
        org=st.sampled_from(["gov", *(code for code, _ in TREE)]),
        steps=limit_steps,
        soft=st.sampled_from([None, None, 0.5, 0.8, 1.0]),
    )
    def set_limits(self, org: str, steps: dict[str, int | None], soft: float | None) -> None:
        """Raise, lower (possibly below usage) or remove some of ``org``'s limits."""
        wanted = {dim: None if n is None else n * STEP[dim] for dim, n in steps.items()}
        old = self.limits.get(org, Limits())
        changes = self.store.quotas.set(org, wanted, soft, dry_run=False)
        new = old.merged(wanted, soft)
        self.limits[org] = new
        changed = {c.field for c in changes}
        assert changed == {d for d in DIMS if old.get(d) != new.get(d)} | (
            {"soft_threshold"} if old.soft_threshold != new.soft_threshold else set()
        )
        used = self.usage.get(org, Usage())
        for c in changes:
            if c.below_usage:
                event("limit lowered below usage")
            if c.field in DIMS:
                assert c.used == used[c.field]
                assert c.below_usage == (c.new is not None and used[c.field] > c.new)

    @rule(
        target=instances, project=st.sampled_from(PROJECTS), flavor=st.sampled_from(list(FLAVORS))
    )
    def create(self, project: str, flavor: str) -> str | MultipleResults[str]:
        vcpus, ram, disk = FLAVORS[flavor]
        amount = Usage.of(instances=1, vcpus=vcpus, ram_mib=ram, disk_gib=disk)
        path = self.paths[project]
        expected = check(path, [self.kinds[c] for c in path], amount, self.usage, self.limits)
        try:
            inst = self.store.instances.create(
                name=f"vm-{next(self.names)}",
                project=project,
                flavor=flavor,
                image="cirros",
                datacentre=None,
                actor="admin",
                request_id=f"req-{uuid.uuid4()}",
            )
        except QuotaExceeded as exc:
            refused = exc.details["violations"]
            inst = None
        if inst is None:
            assert not expected.ok, "the store refused what the engine accepts"
            assert refused == [v.to_dict() for v in expected.violations]
            event(f"create refused at {len(refused)} level-dimension(s)")
            return multiple()
        event(f"create accepted, {inst.state.value}")
        assert expected.ok, f"the store accepted what the engine refuses: {expected.message}"
        assert inst.state in (S.SCHEDULED, S.PENDING)
        self.usage = charge(self.usage, path, amount)
        crossed = sum(w.crossed for w in expected.soft_warnings)
        if crossed:
            event("soft threshold crossed")
        self.events += crossed
        self.live[inst.id] = (project, amount)
        # accepted: no level of the path is now above any limit it has (all four
        # dimensions are asked for by every instance)
        for code in path:
            limits = self.limits.get(code, Limits())
            for dim in DIMS:
                cap = limits.get(dim)
                assert cap is None or self.usage[code][dim] <= cap, (code, dim, cap)
        return inst.id

    @rule(instance=consumes(instances), confirm=st.booleans())
    def delete(self, instance: str, confirm: bool) -> None:
        if instance in self.deleting:
            return
        after = self.store.instances.request(
            instance, "delete", scope="gov", actor="admin", request_id="req-del"
        )
        event(f"delete {after.state.value}")
        if after.state is S.DELETED:  # was PENDING: released at once
            self._released(instance)
            return
        assert after.state is S.DELETING
        self.deleting.add(instance)  # still counted until the agent confirms
        if confirm:
            self._confirm(instance)

    @precondition(lambda self: bool(self.deleting))
    @rule(data=st.data())
    def agent_confirms_a_deletion(self, data: st.DataObject) -> None:
        self._confirm(data.draw(st.sampled_from(sorted(self.deleting))))

    @rule(
        instance=instances,
        state=st.sampled_from([ActualState.RUNNING, ActualState.STOPPED]),
        action=st.sampled_from([None, "stop", "start"]),
    )
    def power(self, instance: str, state: ActualState, action: str | None) -> None:
        """Agent reports and user power actions: none of them changes usage."""
        if instance not in self.live or instance in self.deleting:
            return
        inst = self.store.instances.get(instance, "gov")
        if inst.host is not None:
            self.store.instances.apply_status(
                inst.host, [InstanceStatus(instance_id=instance, state=state)]
            )
        current = self.store.instances.get(instance, "gov").state
        if (action, current) in (("stop", S.RUNNING), ("start", S.STOPPED)):
            assert action is not None
            self.store.instances.request(
                instance, action, scope="gov", actor="admin", request_id="req-power"
            )

    @rule()
    def retry_pending(self) -> None:
        self.store.instances.place_pending()

    def _confirm(self, instance: str) -> None:
        outcome = self.store.instances.apply_status(
            self.host, [InstanceStatus(instance_id=instance, state=ActualState.ABSENT)]
        )
        assert outcome.released == 1
        self.deleting.discard(instance)
        self._released(instance)

    def _released(self, instance: str) -> None:
        project, amount = self.live.pop(instance)
        self.usage = release(self.usage, self.paths[project], amount)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def stored_usage_is_the_model_and_the_sum_of_live_instances(self) -> None:
        stored = {n.org: n for n in self.store.quotas.nodes()}
        counted: dict[str, Usage] = {}
        live = self.store.instances.list("gov", limit=100_000)
        assert {i.id for i in live} == set(self.live)
        for inst in live:
            amount = Usage.of(instances=1, **inst.resources.model_dump())
            counted = charge(counted, inst.org_path.split("/"), amount)
        for code in self.paths:
            node = stored.get(code)
            usage = Usage(node.usage) if node else Usage()
            assert usage == self.usage.get(code, Usage()), (code, usage, self.usage.get(code))
            assert usage == counted.get(code, Usage()), (code, usage, counted.get(code))
            limits = self.limits.get(code, Limits())
            assert (node.limits if node else {}) == limits.as_dict(), code
            threshold = node.soft_threshold if node else DEFAULT_SOFT_THRESHOLD
            assert threshold == limits.soft_threshold, code
        assert self.store.quotas.verify("gov", repair=False) == []

    @invariant()
    def one_event_per_crossing(self) -> None:
        assert len(self.store.quotas.events("gov", limit=1000)) == self.events


def test_store_usage_always_matches_the_engine_and_the_instances(
    sqlite_template: Path, tmp_path: Path
) -> None:
    class Machine(QuotaMachine):
        template = sqlite_template
        directory = tmp_path

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
