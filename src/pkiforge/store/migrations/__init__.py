"""pkiforge.store.migrations."""
