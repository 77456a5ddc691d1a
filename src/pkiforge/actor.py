"""Who did something: shared by the CA core (audit, issuance) and request signing (auth/), so
that neither has to import the other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who did something: an operator, a service (mTLS), a signing key, or the system."""

    kind: str
    id: str
    address: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


OPERATOR = Actor("operator", "cli")
SYSTEM = Actor("system", "pkiforge")
