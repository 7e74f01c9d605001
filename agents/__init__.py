"""The govcloud host agent: a separate deployable that runs on every hypervisor host."""
