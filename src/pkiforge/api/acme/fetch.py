"""http-01 fetches (RFC 8555 §8.3) for the ACME core, through the address guard.

The name is resolved once (or taken from `acme.resolve` in tests), every address it gives
must pass the guard, and the request goes to that address with the name as `Host`, so a
second DNS answer cannot send it elsewhere. Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from pkiforge.acme.addresses import Address, AddressGuard
from pkiforge.errors import AcmeError

MAX_BODY = 8 * 1024  # a key authorization is about 90 bytes


@dataclass(frozen=True)
class Http01Fetcher:
    guard: AddressGuard
    port: int = 80
    timeout: float = 10.0
    resolve: Mapping[str, str] = field(default_factory=dict)  # name -> "address:port"

    def targets(self, name: str) -> list[tuple[Address, int]]:
        """Where `name`'s port 80 is, every address checked by the guard.

        Raises:
            AcmeError: dns (no address), connection (an address the guard refuses).
        """
        override = self.resolve.get(name)
        if override is not None:
            host, _, port_text = override.rpartition(":")
            found = [(ipaddress.ip_address(host.strip("[]")), int(port_text))]
        else:
            try:
                infos = socket.getaddrinfo(name, self.port, type=socket.SOCK_STREAM)
            except OSError:
                raise AcmeError("dns", f"{name} does not resolve") from None
            found = [(ipaddress.ip_address(str(info[4][0])), self.port) for info in infos]
        if not found:
            raise AcmeError("dns", f"{name} has no address")
        for address, target_port in found:
            self.guard.check(address, target_port)  # all of them: the client may pick any
        return found

    def __call__(self, name: str, token: str) -> bytes:
        address, port = self.targets(name)[0]
        host = f"[{address}]" if address.version == 6 else str(address)
        url = f"http://{host}:{port}/.well-known/acme-challenge/{token}"
        try:
            with (
                httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as c,
                c.stream("GET", url, headers={"Host": name}) as response,
            ):
                if response.is_redirect:
                    raise AcmeError("incorrectResponse", f"{name} answered with a redirect")
                if response.status_code != 200:
                    raise AcmeError("unauthorized", f"{name} answered HTTP {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise AcmeError("incorrectResponse", f"{name} answered too much")
                return body
        except httpx.TimeoutException:
            raise AcmeError("connection", f"{name}: timed out") from None
        except httpx.HTTPError as exc:
            raise AcmeError("connection", f"{name}: {type(exc).__name__}") from None
