"""Capacity planning, pure: hardware sizing from measured usage, consolidation of
existing machine rooms into the consolidated data centres, and power-saving consolidation
of a running data centre's hosts.

Nothing here does I/O: the CLI (``govcloud plan``) and the Cloud Open Lab read files and
pass their *text* in. Modules, by noun:

- :mod:`~controlplane.planner.problems`  input errors that name file, line, field and value
- :mod:`~controlplane.planner.yamlfile`  YAML text -> validated pydantic model
- :mod:`~controlplane.planner.hostmodel` candidate host models (capacity, watts, price)
- :mod:`~controlplane.planner.target`    target data centres (space, power, affinity)
- :mod:`~controlplane.planner.packing`   multi-dimensional bin packing and its lower bound
- :mod:`~controlplane.planner.sizing`    measured usage -> hosts per model per data centre
- :mod:`~controlplane.planner.spec`      a sizing result as a procurement specification
- :mod:`~controlplane.planner.inventory` machine-room inventory (CSV) of existing workloads
- :mod:`~controlplane.planner.generator` a realistic, seeded inventory generator
- :mod:`~controlplane.planner.consolidate` rooms -> data centres -> hosts, power, waves
- :mod:`~controlplane.planner.powerdown`   empty lightly loaded hosts of a live data centre
"""
