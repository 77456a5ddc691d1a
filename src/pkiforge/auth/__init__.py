"""pkiforge.auth."""
