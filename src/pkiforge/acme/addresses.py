"""Where challenge validation may connect: an allow-list and a deny-list of addresses.

A private PKI validates names on private addresses, so the default allows the private ranges
(RFC 1918, RFC 4193) and nothing else. Never allowed, whatever the allow-list says:
link-local and cloud metadata addresses, the unspecified and multicast ranges, this server's
own listening addresses, and loopback unless a test configuration turns it on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from pkiforge.errors import AcmeError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
ALWAYS_DENIED = (
    "169.254.0.0/16",  # link-local, where cloud metadata services answer (169.254.169.254)
    "fe80::/10",
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "0.0.0.0/8",
    "::/128",
    "224.0.0.0/4",
    "ff00::/8",
    "255.255.255.255/32",
)


def networks(values: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


@dataclass(frozen=True)
class AddressGuard:
    """Says whether validation may connect to (address, port)."""

    allowed: tuple[Network, ...] = field(default_factory=lambda: networks(PRIVATE))
    allow_loopback: bool = False
    # this server's listening (address, port)s; an unspecified address means every local one
    own: tuple[tuple[Address, int], ...] = ()

    def check(self, address: Address, port: int) -> None:
        """Raises AcmeError (connection) naming why the address is refused."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for own, own_port in self.own:
            if port == own_port and (own == address or own.is_unspecified):
                raise AcmeError("connection", f"{address}:{port} is this server's own address")
        if any(address in net for net in networks(ALWAYS_DENIED)):
            raise AcmeError("connection", f"validation may not connect to {address}")
        if address.is_loopback:
            if self.allow_loopback:
                return
            raise AcmeError("connection", f"validation may not connect to loopback {address}")
        if not any(address in net for net in self.allowed):
            raise AcmeError(
                "connection", f"{address} is outside the ranges validation may connect to"
            )
