"""pkiforge.api."""
