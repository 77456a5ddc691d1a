"""What the routers share, built once per process by `create_app` (no module-level globals)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from prometheus_client import CollectorRegistry

from pkiforge.auth.mtls import ClientCertificateVerifier
from pkiforge.ca.models import CAStatus
from pkiforge.clock import Clock
from pkiforge.settings import Settings
from pkiforge.wiring import Pki

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class AppState:
    """Services and policies of one API process."""

    settings: Settings
    pki: Pki
    clock: Clock
    identities: ClientCertificateVerifier
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def build(cls, settings: Settings, pki: Pki) -> AppState:
        clock = pki.ctx.clock

        def issuers() -> list[x509.Certificate]:
            return [
                ca.certificate
                for ca in pki.hierarchy.all()
                if ca.certificate is not None and ca.status is CAStatus.ACTIVE
            ]

        def lookup(serial: int):  # type: ignore[no-untyped-def]
            with pki.store.transaction() as tx:
                return tx.certificates.get(serial)

        verifier = ClientCertificateVerifier(issuers, pki.ctx.config.trust_domain, lookup, clock)
        proxies = tuple(
            ipaddress.ip_network(p, strict=False) for p in settings.server.trusted_proxies
        )
        return cls(settings, pki, clock, verifier, trusted_proxies=proxies)

    def is_trusted_proxy(self, address: str | None) -> bool:
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)
