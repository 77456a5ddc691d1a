"""What the routers share: the parts the composition root (wiring.py) built for one process."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio.to_thread
from prometheus_client import CollectorRegistry

from pkiforge.api.keyauth import KeyAuth
from pkiforge.api.service_api import ServiceApi
from pkiforge.api.turns import Turns
from pkiforge.auth.mtls import ClientCertificateVerifier, ServiceIdentity
from pkiforge.ca.authorization import Caller, Whitelist
from pkiforge.clock import Clock
from pkiforge.pki import Pki
from pkiforge.settings import Settings

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class AppState:
    """Services and policies of one API process."""

    settings: Settings
    pki: Pki
    identities: ClientCertificateVerifier
    api: ServiceApi
    signing: KeyAuth  # request-signing keys and verifier (api/keyauth.py)
    registry: CollectorRegistry  # the metrics of this app, and only of it
    trusted_proxies: tuple[Network, ...] = ()
    whitelist: Whitelist = field(default_factory=Whitelist)
    # 0: run the core inline in the event loop; N: in up to N worker threads (api/blocking.py)
    threads: int = 0
    turns: Turns = field(default_factory=Turns)

    @property
    def clock(self) -> Clock:
        return self.pki.ctx.clock

    async def run(self, fn: Callable[[], T]) -> T:
        """Call the synchronous core as this process is configured to: inline, when this
        request's turn comes (api/turns.py), or in a thread."""
        if self.threads == 0:
            await self.turns.take()
            return fn()
        return await anyio.to_thread.run_sync(fn)

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
