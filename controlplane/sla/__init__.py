"""SLA accounting: pure functions from instance state histories to monthly SLA figures.

No I/O here (an import-linter contract keeps it so): the store reads histories and
maintenance windows, the API passes them in with the clock and the targets, and gets back
report models (:mod:`controlplane.schemas.sla`).

- :mod:`.history`: the input records (state events of one instance).
- :mod:`.availability`: eligible minutes, platform downtime and exclusions per instance.
- :mod:`.provisioning`: create accepted -> first RUNNING, failures, percentiles.
- :mod:`.incidents`: simultaneous downtime on one host grouped into incidents.
- :mod:`.targets`: service classes (YAML) and their assignment to ministries.
- :mod:`.report`: everything above, aggregated per project / agency / ministry.

The definition is written out for users in ``docs/sla.md``.
"""
