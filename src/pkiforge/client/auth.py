"""Request signing for clients: RFC 9421 signatures as an `httpx.Auth` (sync and async).

    auth = SigningAuth(key_id="k1", private_key=load_pem_private_key(pem, None))
    httpx.Client(auth=auth).post("https://api.example.com/v1/x", json={...})

Each request gets a Content-Digest (when it has a body) and one signature covering @method,
@target-uri, content-digest and content-type (when present), with created, expires, a fresh
nonce, keyid and alg. The algorithm follows the key: rsa-pss-sha512 for RSA (or
rsa-v1_5-sha256 if asked), ecdsa-p256-sha256, ecdsa-p384-sha384, ed25519.
"""

from __future__ import annotations

import secrets
from collections.abc import Generator, Iterable, Sequence

import httpx

from pkiforge.auth.algorithms import (
    PrivateKey,
    SignatureAlgorithm,
    algorithm_for_key,
    key_fits_algorithm,
    sign,
)
from pkiforge.auth.canonical import (
    HttpRequest,
    covered_components,
    signature_base,
    signature_fields,
)
from pkiforge.auth.digest import content_digest
from pkiforge.auth.structured import Params
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import InvalidInput

__all__ = ["RequestSigner", "SigningAuth"]

_REPLACED = frozenset({"content-digest", "signature", "signature-input"})


class RequestSigner:
    """Computes the signature header fields for one request; independent of any HTTP library."""

    def __init__(
        self,
        *,
        key_id: str,
        private_key: PrivateKey,
        algorithm: SignatureAlgorithm | None = None,
        clock: Clock | None = None,
        expires_in: int = 300,
        label: str = "sig1",
    ) -> None:
        """Prepare to sign with `private_key` under `key_id`.

        Raises:
            WeakKey, InvalidInput: the key is outside the policy or does not fit `algorithm`.
        """
        self.algorithm = algorithm or algorithm_for_key(private_key)
        if not key_fits_algorithm(self.algorithm, private_key):
            raise InvalidInput(
                f"key type does not fit algorithm {self.algorithm}", field="algorithm"
            )
        self.key_id = key_id
        self._key = private_key
        self._clock = clock or SystemClock()
        self.expires_in = expires_in
        self.label = label

    def signature_headers(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> list[tuple[str, str]]:
        """The header fields to set: Content-Digest (with a body), Signature-Input, Signature."""
        kept = [(k, v) for k, v in headers if k.lower() not in _REPLACED]
        added: list[tuple[str, str]] = []
        components = ["@method", "@target-uri"]
        if body:
            added.append(("Content-Digest", content_digest(body)))
            components.append("content-digest")
        if any(k.lower() == "content-type" for k, _ in kept):
            components.append("content-type")
        request = HttpRequest(method.upper(), url, [*kept, *added], body)
        covered = covered_components(components, self._params())
        signature = sign(self.algorithm, self._key, signature_base(request, covered))
        return [*added, *signature_fields(self.label, covered, signature)]

    def _params(self) -> Params:
        created = int(self._clock.now().timestamp())
        return {
            "created": created,
            "expires": created + self.expires_in,
            "nonce": secrets.token_urlsafe(16),
            "keyid": self.key_id,
            "alg": str(self.algorithm),
        }


class SigningAuth(httpx.Auth):
    """Signs every httpx request (and every redirect hop) with a `RequestSigner`."""

    requires_request_body = True

    def __init__(
        self,
        *,
        key_id: str,
        private_key: PrivateKey,
        algorithm: SignatureAlgorithm | None = None,
        clock: Clock | None = None,
        expires_in: int = 300,
    ) -> None:
        self.signer = RequestSigner(
            key_id=key_id,
            private_key=private_key,
            algorithm=algorithm,
            clock=clock,
            expires_in=expires_in,
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Add the signature header fields to `request` in place (its body must be read)."""
        fields = self.signer.signature_headers(
            request.method, str(request.url), request.headers.multi_items(), request.content
        )
        for name in _REPLACED:
            request.headers.pop(name, None)
        for name, value in fields:
            request.headers[name] = value


try:  # a `requests` variant, only where requests is installed
    import requests
    import requests.auth

    class SigningRequestsAuth(requests.auth.AuthBase):
        """The same signatures for `requests`: `requests.post(url, auth=SigningRequestsAuth(s))`."""

        def __init__(self, signer: RequestSigner) -> None:
            self.signer = signer

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            body = request.body or b""
            if isinstance(body, str):
                body = body.encode("utf-8")
            if not isinstance(body, bytes):
                raise TypeError("streamed request bodies cannot be signed; pass bytes")
            fields = self.signer.signature_headers(
                request.method or "GET",
                request.url or "",
                _text_headers(request.headers.items()),
                body,
            )
            for name in _REPLACED:
                request.headers.pop(name, None)
            request.headers.update(fields)
            return request

    def _text_headers(items: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, str]]:
        return [(k, v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in items]

    __all__ += ["SigningRequestsAuth"]
except ImportError:  # pragma: no cover - requests is optional
    pass
