"""Where http-01 validation may connect: the guard's table, and the fetcher resolving through it."""

from __future__ import annotations

import ipaddress

import pytest

from pkiforge.acme.addresses import AddressGuard
from pkiforge.api.acme.fetch import Http01Fetcher
from pkiforge.errors import AcmeError

OWN = ((ipaddress.ip_address("10.1.2.3"), 8443), (ipaddress.ip_address("0.0.0.0"), 9443))


@pytest.mark.parametrize(
    ("address", "port", "loopback", "allowed"),
    [
        ("10.0.0.5", 80, False, True),
        ("192.168.1.9", 80, False, True),
        ("172.20.0.1", 80, False, True),
        ("fd12::1", 80, False, True),
        ("8.8.8.8", 80, False, False),  # outside the default (private) ranges
        ("169.254.169.254", 80, False, False),  # cloud metadata
        ("fe80::1", 80, False, False),
        ("::ffff:169.254.169.254", 80, False, False),  # mapped, still metadata
        ("fd00:ec2::254", 80, False, False),
        ("127.0.0.1", 80, False, False),
        ("127.0.0.1", 80, True, True),
        ("::1", 80, True, True),
        ("10.1.2.3", 8443, False, False),  # this server
        ("10.1.2.3", 80, False, True),
        ("10.9.9.9", 9443, False, False),  # this server listens on every address there
        ("0.0.0.0", 80, True, False),
        ("224.0.0.1", 80, False, False),
    ],
)
def test_guard(address: str, port: int, loopback: bool, allowed: bool) -> None:
    guard = AddressGuard(allow_loopback=loopback, own=OWN)
    if allowed:
        guard.check(ipaddress.ip_address(address), port)
    else:
        with pytest.raises(AcmeError) as caught:
            guard.check(ipaddress.ip_address(address), port)
        assert caught.value.kind == "connection"


def test_fetcher_checks_an_override_and_real_resolution() -> None:
    guard = AddressGuard(allow_loopback=False)
    fetch = Http01Fetcher(guard, resolve={"svc.test": "127.0.0.1:8080"})
    with pytest.raises(AcmeError, match="loopback"):
        fetch.targets("svc.test")
    with pytest.raises(AcmeError, match="loopback"):
        fetch.targets("localhost")  # resolved by the system, refused all the same
    with pytest.raises(AcmeError) as caught:
        fetch.targets("no-such-name.invalid")
    assert caught.value.kind == "dns"
