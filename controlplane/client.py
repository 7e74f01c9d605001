"""HTTP client for the govcloud API, shared by the CLI, the demo and scripts."""
