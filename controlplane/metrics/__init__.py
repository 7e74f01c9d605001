"""Prometheus metrics: instruments and collectors, exposed at ``/metrics``.

Collectors read the store at scrape time, so every replica reports the same numbers and
nothing is kept in process memory (replicas and restarts are invisible to the series).
"""
