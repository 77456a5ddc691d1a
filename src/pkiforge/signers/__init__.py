"""pkiforge.signers."""
