"""What the routers share: the parts the composition root (wiring.py) built for one process."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio.to_thread
from prometheus_client import CollectorRegistry

from pkiforge.acme.service import AcmeService
from pkiforge.api.keyauth import KeyAuth
from pkiforge.api.readiness import Readiness
from pkiforge.api.service_api import ServiceApi
from pkiforge.auth.mtls import ClientCertificateVerifier, ServiceIdentity
from pkiforge.ca.authorization import Caller, Whitelist
from pkiforge.clock import Clock
from pkiforge.pki import Pki
from pkiforge.settings import Settings
from pkiforge.store.durable import deferred

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
R = TypeVar("R")


@dataclass
class AppState:
    """Services and policies of one API process."""

    settings: Settings
    pki: Pki
    identities: ClientCertificateVerifier
    api: ServiceApi
    signing: KeyAuth  # request-signing keys and verifier (api/keyauth.py)
    registry: CollectorRegistry  # the metrics of this app, and only of it
    readiness: Readiness  # /readyz, and the free-space reserve of new writes
    trusted_proxies: tuple[Network, ...] = ()
    whitelist: Whitelist = field(default_factory=Whitelist)
    acme: AcmeService | None = None  # the ACME server's use-cases, when acme.enabled
    # run core calls on the event loop rather than in the thread pool (api/core_calls.py)
    core_inline: bool = False

    async def run(self, call: Callable[[], R]) -> R:
        """Run a core call as this process runs them, and return once its commits are durable.

        Raises:
            whatever `call` raises; StoreUnavailable if the sync its commits owe fails.
        """
        with deferred() as sync:
            try:
                if self.core_inline:
                    return call()
                return await anyio.to_thread.run_sync(call)
            finally:
                durable = self.pki.store.durable
                if sync.owed and durable is not None:
                    await durable.settle()

    @property
    def clock(self) -> Clock:
        return self.pki.ctx.clock

    def caller(self, identity: ServiceIdentity, address: str | None) -> Caller:
        """The authorization view of a verified service (its whitelist policy, if any)."""
        return Caller(identity.service_id, self.whitelist.policy_for(identity.service_id), address)

    def is_trusted_proxy(self, address: str | None) -> bool:
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)
