"""pkiforge.x509."""
