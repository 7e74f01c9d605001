"""Cloud Open Lab persistence: :class:`LabRepo` (``store.lab``), made of one mixin per noun.

- :mod:`~controlplane.store.lab_vendors`     vendors and the Lab's organisation
- :mod:`~controlplane.store.lab_trials`      trial requests and reads
- :mod:`~controlplane.store.lab_decisions`   approve, reject, cancel
- :mod:`~controlplane.store.lab_extensions`  extension requests and decisions
- :mod:`~controlplane.store.lab_stages`      evidence and stage sign-offs
- :mod:`~controlplane.store.lab_catalog`     the catalogue of certified offerings
- :mod:`~controlplane.store.lab_expiry`      the expiry loop's transitions and cleanup
- :mod:`~controlplane.store.lab_rows`        the row helpers they share

Every change to a trial locks its row first (``SELECT ... FOR UPDATE``; SQLite serialises
writers), then checks the rule on the locked row, then writes the change and a history
event in the same transaction. Approval creates the trial's project
(``gov/openlab/<vendor>/<trial id>``) with the template's quota, and checks the ministry's
``trial_envs`` limit against the trials it already holds (counted under the locks of the
ministry's quota rows, root first, so concurrent approvals cannot overshoot). The trial
environments a ministry holds are derived from the trials, not stored as quota usage, so
``quota verify`` (which recomputes usage from instances) stays exact.

Authorisation rules are pure (``controlplane.lab.access``); methods that must judge the
locked row take an ``authorize`` callback, run inside the transaction. Scenario runs
(``lab_runs``) and promotion (``lab_promote``) are separate repositories.
"""

from __future__ import annotations

from controlplane.store.lab_catalog import LabCatalog
from controlplane.store.lab_decisions import LabDecisions
from controlplane.store.lab_expiry import LabExpiry
from controlplane.store.lab_extensions import LabExtensions
from controlplane.store.lab_rows import Authorize, ref_of
from controlplane.store.lab_stages import LabStages
from controlplane.store.lab_trials import LabTrials
from controlplane.store.lab_vendors import LabVendors

__all__ = ["Authorize", "LabRepo", "ref_of"]


class LabRepo(LabVendors, LabTrials, LabDecisions, LabExtensions, LabStages, LabCatalog, LabExpiry):
    """Vendors, trials and the catalogue."""
