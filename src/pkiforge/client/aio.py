"""`AsyncPkiClient`: the same operations for asyncio code, over `httpx.AsyncClient`."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from pkiforge.client import operations as ops
from pkiforge.client.autorenew import AutoRenewal, RenewalOptions, Swappable, enable_for_client
from pkiforge.client.core import Call, Reply, finish
from pkiforge.client.enroll import prepare_enrollment, store_certificate
from pkiforge.client.models import Certificate
from pkiforge.client.options import ClientOptions, Verify, unreachable
from pkiforge.client.peers import pick_endpoint
from pkiforge.client.sync import client_for
from pkiforge.client.tls import Identity
from pkiforge.errors import InvalidInput, PkiError
from pkiforge.x509.keys import KeyType

__all__ = ["AsyncPkiClient"]

P = ParamSpec("P")
T = TypeVar("T")


def _bind(
    build: Callable[P, Call[T]],
) -> Callable[Concatenate[AsyncPkiClient, P], Coroutine[Any, Any, T]]:
    async def method(self: AsyncPkiClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.send(build(*args, **kwargs))

    method.__name__ = build.__name__
    method.__doc__ = build.__doc__
    return method


class AsyncPkiClient:
    """Asynchronous client of the pkiforge API; safe to share between tasks of one loop."""

    def __init__(
        self,
        base_url: str,
        *,
        identity: Identity | None = None,
        verify: Verify = None,
        timeout: float = 10.0,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Connect lazily to `base_url`.

        Raises:
            FileNotFoundError / ssl.SSLError: an identity or CA file is missing or unusable.
        """
        self.options = ClientOptions(base_url, identity, verify, timeout, auth)
        arguments = self.options.httpx_arguments()
        self.ssl_context: ssl.SSLContext | None = (
            arguments["verify"] if isinstance(arguments["verify"], ssl.SSLContext) else None
        )
        # the renewal thread's synchronous client can share a transport that is both kinds
        # (httpx.MockTransport); otherwise it makes its own
        self._sync_transport = transport if isinstance(transport, httpx.BaseTransport) else None
        self._http = httpx.AsyncClient(transport=transport, **arguments)

    async def send(self, call: Call[T]) -> T:
        """Perform one call.

        Raises:
            PkiError: the server refused; Unreachable: it could not be reached.
        """
        try:
            response = await self._http.request(
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

    async def enroll(
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
        cert = await self.request_certificate(enrollment.request, token=token)
        store_certificate(identity, cert, enrollment.key, await self._bundle_or_none())
        return cert

    async def _bundle_or_none(self) -> bytes | None:
        """The server's CA bundle for a new identity; None (the root alone) if it fails."""
        try:
            return (await self.ca_bundle()).encode()
        except PkiError:
            return None

    async def peer(self, service_id: str, **httpx_options: Any) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` for a discovered service, over mTLS with this identity.

        Raises:
            NotFound: no such service; InvalidInput: it has no HTTPS endpoint or no identity.
        """
        if self.ssl_context is None or self.options.identity is None:
            raise InvalidInput("calling a peer over mTLS needs an identity", field="identity")
        base = pick_endpoint(await self.discover_service(service_id))
        return httpx.AsyncClient(base_url=base, verify=self.ssl_context, **httpx_options)

    def enable_auto_renewal(
        self,
        renew_before: dt.timedelta | str | None = None,
        *,
        on_renew: Callable[[Certificate], None] | None = None,
        contexts: Sequence[Swappable] = (),
        options: RenewalOptions | None = None,
    ) -> AutoRenewal:
        """Renew this client's identity in the background; swap this client's TLS and `contexts`.

        The renewal runs in a thread of its own with a synchronous client to the same server,
        so it never blocks the event loop; `on_renew` is called from that thread (hand work to
        the loop with `loop.call_soon_threadsafe`).

        Raises:
            InvalidInput: the client has no identity; ValueError: bad timing options.
        """
        settings, transport = self.options, self._sync_transport
        return enable_for_client(
            settings.identity,
            self.ssl_context,
            lambda identity: client_for(settings, identity, transport),
            renew_before,
            on_renew=on_renew,
            contexts=contexts,
            options=options,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPkiClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
