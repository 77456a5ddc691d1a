"""pkiforge.ca."""
