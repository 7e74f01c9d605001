"""Level-based loops that converge stored state: pending placements (more to come)."""
