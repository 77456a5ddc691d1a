"""pkiforge.client."""
