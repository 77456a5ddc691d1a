"""`PkiClient`: the API for synchronous code, one method per operation, over `httpx.Client`.

    with PkiClient("https://pki.internal:8443", identity=Identity.in_dir("/etc/billing")) as pki:
        cert = pki.get_certificate("1f2e...")

Every method is an operation builder from `operations` bound to this client's transport, so
`AsyncPkiClient` shares all request building, error mapping and parsing. Thread-safe: the only
state is the `httpx.Client`, which may be shared between threads.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from pkiforge.client import operations as ops
from pkiforge.client.autorenew import (
    AutoRenewal,
    RenewalOptions,
    Swappable,
    enable_for_client,
)
from pkiforge.client.core import Call, Reply, finish
from pkiforge.client.enroll import prepare_enrollment, store_certificate
from pkiforge.client.models import Certificate
from pkiforge.client.options import ClientOptions, Verify, unreachable
from pkiforge.client.peers import pick_endpoint
from pkiforge.client.tls import Identity
from pkiforge.errors import InvalidInput, PkiError
from pkiforge.x509.keys import KeyType

__all__ = ["PkiClient", "client_for"]

P = ParamSpec("P")
T = TypeVar("T")


def _bind(build: Callable[P, Call[T]]) -> Callable[Concatenate[PkiClient, P], T]:
    def method(self: PkiClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.send(build(*args, **kwargs))

    method.__name__ = build.__name__
    method.__doc__ = build.__doc__
    return method


class PkiClient:
    """Synchronous client of the pkiforge API (mTLS with `identity`, or a CA bundle in `verify`)."""

    def __init__(
        self,
        base_url: str,
        *,
        identity: Identity | None = None,
        verify: Verify = None,
        timeout: float = 10.0,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Connect lazily to `base_url`.

        Raises:
            FileNotFoundError / ssl.SSLError: an identity or CA file is missing or unusable.
        """
        self.options = ClientOptions(base_url, identity, verify, timeout, auth)
        self._transport = transport
        arguments = self.options.httpx_arguments()
        self.ssl_context: ssl.SSLContext | None = (
            arguments["verify"] if isinstance(arguments["verify"], ssl.SSLContext) else None
        )
        self._http = httpx.Client(transport=transport, **arguments)

    def send(self, call: Call[T]) -> T:
        """Perform one call.

        Raises:
            PkiError: the server refused; Unreachable: it could not be reached.
        """
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=dict(call.params) or None,
                json=call.body,
                headers=dict(call.headers),
            )
        except httpx.TransportError as exc:
            raise unreachable(self.options.base_url, exc) from None
        return finish(call, Reply(response.status_code, response.headers, response.content))

    request_certificate = _bind(ops.request_certificate)
    renew_certificate = _bind(ops.renew_certificate)
    revoke_certificate = _bind(ops.revoke_certificate)
    get_certificate = _bind(ops.get_certificate)
    list_certificates = _bind(ops.list_certificates)
    download_certificate = _bind(ops.download_certificate)
    register_service = _bind(ops.register_service)
    update_service = _bind(ops.update_service)
    get_service = _bind(ops.get_service)
    list_services = _bind(ops.list_services)
    discover = _bind(ops.discover)
    discover_service = _bind(ops.discover_service)
    peer_certificate = _bind(ops.peer_certificate)
    list_cas = _bind(ops.list_cas)
    root_certificate = _bind(ops.root_certificate)
    ca_certificate = _bind(ops.ca_certificate)
    ca_chain = _bind(ops.ca_chain)
    ca_bundle = _bind(ops.ca_bundle)
    crl = _bind(ops.crl)
    check_revocation = _bind(ops.check_revocation)
    whoami = _bind(ops.whoami)
    renewal_policy = _bind(ops.renewal_policy)
    healthz = _bind(ops.healthz)
    readyz = _bind(ops.readyz)

    def enroll(
        self,
        token: str,
        names: Sequence[str],
        identity: Identity,
        *,
        service_id: str | None = None,
        profile: str | None = None,
        key_type: KeyType = "p256",
    ) -> Certificate:
        """First certificate with a one-time token; the key is made here and stored 0600.

        Raises:
            PkiError: the token or the names were refused; nothing is written then.
        """
        enrollment = prepare_enrollment(
            names, identity, service_id=service_id, key_type=key_type, profile=profile
        )
        cert = self.request_certificate(enrollment.request, token=token)
        store_certificate(identity, cert, enrollment.key, self._bundle_or_none())
        return cert

    def _bundle_or_none(self) -> bytes | None:
        """The server's CA bundle for a new identity; None (the root alone) if it fails."""
        try:
            return self.ca_bundle().encode()
        except PkiError:
            return None

    def peer(self, service_id: str, **httpx_options: Any) -> httpx.Client:
        """An `httpx.Client` for a discovered service, over mTLS with this client's identity.

        Raises:
            NotFound: no such service; InvalidInput: it has no HTTPS endpoint or no identity.
        """
        base = pick_endpoint(self.discover_service(service_id))
        return httpx.Client(base_url=base, verify=self._peer_context(), **httpx_options)

    def _peer_context(self) -> ssl.SSLContext:
        if self.ssl_context is None or self.options.identity is None:
            raise InvalidInput("calling a peer over mTLS needs an identity", field="identity")
        return self.ssl_context

    def enable_auto_renewal(
        self,
        renew_before: dt.timedelta | str | None = None,
        *,
        on_renew: Callable[[Certificate], None] | None = None,
        contexts: Sequence[Swappable] = (),
        options: RenewalOptions | None = None,
    ) -> AutoRenewal:
        """Renew this client's identity in the background; swap this client's TLS and `contexts`.

        Renews `renew_before` (e.g. `"30d"`) before expiry; by default as the server's renewal
        policy says, never before 2/3 of the lifetime (docs/integrating.md).

        Raises:
            InvalidInput: the client has no identity; ValueError: bad timing options.
        """
        return enable_for_client(
            self.options.identity,
            self.ssl_context,
            self.connect_as,
            renew_before,
            on_renew=on_renew,
            contexts=contexts,
            options=options,
        )

    def connect_as(self, identity: Identity) -> PkiClient:
        """A new client to the same server with `identity` (read afresh from its files)."""
        return client_for(self.options, identity, self._transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PkiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def client_for(
    options: ClientOptions, identity: Identity, transport: httpx.BaseTransport | None = None
) -> PkiClient:
    """A synchronous client to the server of `options`, as `identity` (read afresh from its
    files); a CA bundle given as an `ssl.SSLContext` is not reused, since it carries the old
    client certificate."""
    verify = options.verify if not isinstance(options.verify, ssl.SSLContext) else None
    return PkiClient(
        options.base_url,
        identity=identity,
        verify=verify,
        timeout=options.timeout,
        auth=options.auth,
        transport=transport,
    )
