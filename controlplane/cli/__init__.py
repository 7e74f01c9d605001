"""The govcloud command line (Typer); talks to the API only through ``controlplane.client``."""
