"""pkiforge.store."""
