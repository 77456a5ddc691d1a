"""What the routers share, built once per process by `create_app` (no module-level globals)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio.to_thread
from cryptography import x509
from prometheus_client import CollectorRegistry

from pkiforge.api.keyauth import KeyAuth
from pkiforge.api.service_api import ServiceApi
from pkiforge.api.turns import Turns
from pkiforge.auth.mtls import ClientCertificateVerifier, ServiceIdentity
from pkiforge.ca.authorization import Caller, Whitelist
from pkiforge.ca.models import CAStatus, CertStatus
from pkiforge.clock import Clock
from pkiforge.settings import Settings
from pkiforge.whitelist import load_whitelist
from pkiforge.wiring import Pki

T = TypeVar("T")
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
    whitelist: Whitelist = field(default_factory=Whitelist)
    services: ServiceApi | None = None  # set by build(); tests may build their own
    signing: KeyAuth | None = None  # request-signing keys and verifier (api/keyauth.py)
    # 0: run the core inline in the event loop; N: in up to N worker threads (api/blocking.py)
    threads: int = 0
    turns: Turns = field(default_factory=Turns)

    async def run(self, fn: Callable[[], T]) -> T:
        """Call the synchronous core as this process is configured to: inline, when this
        request's turn comes (api/turns.py), or in a thread."""
        if self.threads == 0:
            await self.turns.take()
            return fn()
        return await anyio.to_thread.run_sync(fn)

    @property
    def api(self) -> ServiceApi:
        assert self.services is not None, "AppState.build() wires the service API"
        return self.services

    def caller(self, identity: ServiceIdentity, address: str | None) -> Caller:
        """The authorization view of a verified service (its whitelist policy, if any)."""
        return Caller(identity.service_id, self.whitelist.policy_for(identity.service_id), address)

    @classmethod
    def build(cls, settings: Settings, pki: Pki) -> AppState:
        """Raises ValueError: malformed whitelist. StoreUnavailable: Redis URL unusable."""
        clock = pki.ctx.clock

        def issuers() -> list[x509.Certificate]:
            return [
                ca.certificate
                for ca in pki.hierarchy.all()
                if ca.certificate is not None and ca.status is CAStatus.ACTIVE
            ]

        def standing(serial: int) -> tuple[CertStatus, str | None] | None:
            with pki.store.transaction(readonly=True) as tx:
                return tx.certificates.standing(serial)

        verifier = ClientCertificateVerifier(issuers, pki.ctx.config.trust_domain, standing, clock)
        proxies = tuple(
            ipaddress.ip_network(p, strict=False) for p in settings.server.trusted_proxies
        )
        state = cls(
            settings,
            pki,
            clock,
            verifier,
            trusted_proxies=proxies,
            whitelist=load_whitelist(settings.home) or Whitelist(),
            threads=settings.effective_threads,
        )
        state.services = ServiceApi.build(settings, pki, state.registry)
        state.signing = KeyAuth.build(settings, pki, state.registry)
        return state

    def is_trusted_proxy(self, address: str | None) -> bool:
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)
