"""What the routers share: the parts the composition root (wiring.py) built for one process."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from pkiforge.api.keyauth import KeyAuth
from pkiforge.api.service_api import ServiceApi
from pkiforge.auth.mtls import ClientCertificateVerifier, ServiceIdentity
from pkiforge.ca.authorization import Caller, Whitelist
from pkiforge.clock import Clock
from pkiforge.pki import Pki
from pkiforge.settings import Settings

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
