"""Prometheus metrics of the control plane: instruments and collectors, exposed at ``/metrics``.

One module per area: ``api`` (request latency and errors, per replica), ``scheduler``
(decisions from :class:`~controlplane.scheduler.record.DecisionRecord`, per replica),
``reconcile`` (background-loop passes and failures, per replica), and collectors that read
the shared database at scrape time, so every replica reports the same fleet-wide numbers:
``instances``, ``provisioning``, ``hosts``, ``capacity``, ``quota``. ``registry`` assembles
them into one :class:`~prometheus_client.CollectorRegistry` per app (no global registry).
"""
