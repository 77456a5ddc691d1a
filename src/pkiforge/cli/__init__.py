"""pkiforge.cli."""
