"""pkiforge: a private PKI for fleets of services."""

__version__ = "0.1.0"
