"""The Cloud Open Lab expiry loop: activates approved trials, records the warnings before
a trial ends, expires it (its servers stopped, and kept stopped), and after the grace
period deletes its servers and marks it cleaned with a final usage record.

Level-based and idempotent: each pass compares every live trial with the time (from an
injectable clock, so tests run weeks of trial life in milliseconds) and acts; a pass that
finds nothing to do changes nothing. Every replica may run it: each trial's transition
happens under its row lock, and asking twice to stop or delete a server is refused by the
instance state machine, which the loop tolerates.

It also advances scenario runs (``store.lab_runs``) -- VMs that came up or failed, load
start and end, removal of the run's VMs -- on a second, faster timer (``run_interval_s``):
a run's phases last seconds to minutes, a trial's days.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from controlplane.domain.errors import GovcloudError
from controlplane.domain.instance import ACTION_ALLOWED, InstanceState, PowerIntent
from controlplane.domain.lab import Trial, TrialState
from controlplane.lab.lifecycle import LabPolicy, cleanup_due
from controlplane.reconciler.loop import Loop
from controlplane.store import Store
from controlplane.store.lab_runs import LabRunRepo

log = logging.getLogger(__name__)

#: Who the loop's actions are recorded as (trial history, instance actions).
ACTOR = "lab-loop"


@dataclass
class LabPass:
    """What one pass did (for logs and tests)."""

    trials: int = 0
    stopped: int = 0
    deleted: int = 0
    cleaned: int = 0


class LabLoop:
    """A daemon thread running :meth:`run_once` every ``interval_s`` (and on ``poke``)."""

    def __init__(
        self,
        store: Store,
        policy: LabPolicy,
        interval_s: float,
        clock: Callable[[], datetime] | None = None,
        run_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock or store.clock
        self.runs = LabRunRepo(store.db, store.clock, store.instances, store.server_groups)
        self._loop = Loop("lab-loop", interval_s, self.run_once)
        self._runs_loop = Loop("lab-runs", run_interval_s, self.advance_runs)

    def start(self) -> None:
        """Begin in the background."""
        self._loop.start()
        self._runs_loop.start()

    def poke(self) -> None:
        """Run a pass now (a trial was approved, extended or cancelled, a run started)."""
        self._loop.poke()
        self._runs_loop.poke()

    def stop(self) -> None:
        """Stop and wait for the threads."""
        self._runs_loop.stop()
        self._loop.stop()

    def advance_runs(self) -> int:
        """One step of every scenario run in progress; returns how many were looked at."""
        ids = self.runs.active()
        for run_id in ids:
            try:
                self.runs.tick(run_id)
            except Exception:
                log.exception("lab loop: run %s failed; retrying next pass", run_id)
        return len(ids)

    def run_once(self) -> LabPass:
        """One pass over every live trial."""
        now = self.clock()
        done = LabPass()
        for trial in self.store.lab.live():
            try:
                self._reconcile(trial.id, now, done)
            except Exception:
                log.exception("lab loop: trial %s failed; retrying next pass", trial.id)
            done.trials += 1
        if done.stopped or done.deleted or done.cleaned:
            log.info("lab loop: %s", done)
        return done

    def _reconcile(self, trial_id: str, now: datetime, done: LabPass) -> None:
        trial = self.store.lab.tick(trial_id, now, self.policy, ACTOR)
        if trial.state is not TrialState.EXPIRED or trial.project_path is None:
            return
        cleanup = cleanup_due(trial.state, trial.ends_at, now, self.policy)
        self._converge_servers(trial, now, cleanup=cleanup, done=done)
        if cleanup and self.store.lab.finish_cleanup(trial_id, now, ACTOR) is not None:
            done.cleaned += 1

    def _converge_servers(
        self, trial: Trial, now: datetime, *, cleanup: bool, done: LabPass
    ) -> None:
        """Expired: every server stopped; grace over: every server deleted."""
        assert trial.project_path is not None
        servers = self.store.instances.list(trial.project_path, limit=1000)
        request_id = f"lab-{trial.id}-{now:%Y%m%dT%H%M%S}"
        for server in servers:
            if cleanup:
                action = "delete" if server.state in ACTION_ALLOWED["delete"] else None
            elif (
                server.desired_power is PowerIntent.RUNNING
                and server.state in ACTION_ALLOWED["stop"]
            ):
                action = "stop"
            else:
                action = None
            if action is None or server.state is InstanceState.DELETING:
                continue
            try:
                self.store.instances.request(
                    server.id,
                    action,
                    scope=trial.project_path,
                    actor=ACTOR,
                    request_id=request_id,
                )
            except GovcloudError as exc:  # changed meanwhile; the next pass looks again
                log.info("lab loop: %s of %s refused: %s", action, server.id, exc.message)
                continue
            if action == "delete":
                done.deleted += 1
            else:
                done.stopped += 1
