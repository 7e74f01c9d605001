"""Cloud Open Lab rules, as pure functions over immutable values (no I/O but template files).

* ``lab.duration``: ``14d`` / ``36h`` / ``2w`` texts to hours, with errors naming the field.
* ``lab.templates``: trial templates (``templates/*.yaml``: flavors and counts, networks,
  quota, default and maximum TTL), validated with file and field in every error.
* ``lab.lifecycle``: the trial state machine; what the expiry loop must do at a given time
  (activate, warn, expire, clean up) and the final usage record.
* ``lab.stages``: PoC -> Verification -> Certification: evidence and sign-off rules.
* ``lab.access``: who may see, request, approve, extend, add evidence and sign off.

The store applies these decisions in transactions; the API maps the errors to statuses.
"""
