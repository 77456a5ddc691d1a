"""RequestVerifier: every algorithm passes, and every way a request can be wrong is refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest
import redis

from pkiforge.auth import verify as verify_module
from pkiforge.auth.algorithms import SignatureAlgorithm
from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.digest import content_digest
from pkiforge.auth.keys import InMemoryKeyResolver
from pkiforge.auth.nonces import InMemoryNonceStore
from pkiforge.auth.redis_nonces import RedisNonceStore
from pkiforge.auth.verify import RequestVerifier, VerifierPolicy
from pkiforge.clock import FixedClock
from pkiforge.errors import AuthenticationFailed, StoreUnavailable

from .support import CLIENT_KEYS, NOW, sign, sign_custom, signer_for

URL = "https://api.example.com/v1/things?page=2"
BODY = b'{"name": "db-1"}'
JSON = [("Content-Type", "application/json")]
CREATED = int(NOW.timestamp())
PARAMS = {"created": CREATED, "nonce": "n-1", "keyid": "key-ed25519"}


def _signed_post() -> HttpRequest:
    return sign(signer_for("client-ed25519", "key-ed25519"), "POST", URL, JSON, BODY)


def _with(request: HttpRequest, **changes: object) -> HttpRequest:
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]


def _set_header(request: HttpRequest, name: str, value: str) -> HttpRequest:
    kept = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    return _with(request, headers=[*kept, (name, value)])


def _drop_header(request: HttpRequest, name: str) -> HttpRequest:
    return _with(request, headers=[(k, v) for k, v in request.headers if k.lower() != name])


@pytest.mark.parametrize(("name", "key_id", "algorithm"), CLIENT_KEYS, ids=lambda v: str(v))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_algorithm_verifies(
    verifier: RequestVerifier, name: str, key_id: str, algorithm: SignatureAlgorithm, method: str
) -> None:
    body = BODY if method == "POST" else b""
    request = sign(signer_for(name, key_id, algorithm), method, URL, JSON, body)
    identity = verifier.verify(request)
    assert (identity.key_id, identity.client_name, identity.algorithm) == (
        key_id,
        "client-a",
        algorithm.value,
    )
    assert identity.scheme == "rfc9421"
    assert '"@method"' in identity.covered


def test_replayed_request_is_refused(verifier: RequestVerifier) -> None:
    request = _signed_post()
    verifier.verify(request)
    with pytest.raises(AuthenticationFailed, match="nonce reused"):
        verifier.verify(request)


TAMPERING: list[tuple[str, Callable[[HttpRequest], HttpRequest], str]] = [
    ("method", lambda r: _with(r, method="PUT"), "signature does not verify"),
    ("path", lambda r: _with(r, target_uri=URL.replace("/things", "/other")), "does not verify"),
    ("query", lambda r: _with(r, target_uri=URL.replace("page=2", "page=3")), "does not verify"),
    ("host", lambda r: _with(r, target_uri=URL.replace("api.", "evil.")), "does not verify"),
    ("scheme", lambda r: _with(r, target_uri=URL.replace("https", "http")), "does not verify"),
    ("covered header", lambda r: _set_header(r, "Content-Type", "text/plain"), "does not verify"),
    ("body", lambda r: _with(r, body=b'{"name": "db-2"}'), "content-digest does not match body"),
    (
        "body and digest",
        lambda r: _set_header(
            _with(r, body=b"{}"), "Content-Digest", content_digest(b"{}", "sha-256")
        ),
        "signature does not verify",
    ),
    ("body removed", lambda r: _with(r, body=b""), "content-digest does not match body"),
    ("signature", lambda r: _set_header(r, "Signature", "sig1=:AAAA:"), "does not verify"),
    ("no Signature-Input", lambda r: _drop_header(r, "signature-input"), "missing Signature-Input"),
    ("no Signature", lambda r: _drop_header(r, "signature"), "missing Signature"),
    (
        "malformed input",
        lambda r: _set_header(r, "Signature-Input", "sig1=(@method)"),
        "malformed Signature-Input",
    ),
    (
        "second signature",
        lambda r: _with(
            r,
            headers=[
                *r.headers,
                ("Signature-Input", 'sig2=("@method");created=1'),
                ("Signature", "sig2=:AAAA:"),
            ],
        ),
        "expected exactly one signature, found 2",
    ),
]


@pytest.mark.parametrize(("what", "tamper", "reason"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampered_request_is_refused(
    verifier: RequestVerifier,
    what: str,
    tamper: Callable[[HttpRequest], HttpRequest],
    reason: str,
) -> None:
    with pytest.raises(AuthenticationFailed, match=reason):
        verifier.verify(tamper(_signed_post()))


def test_unsigned_header_may_change(verifier: RequestVerifier) -> None:
    """A proxy adding or changing an uncovered header breaks nothing."""
    request = _with(_signed_post(), headers=[*_signed_post().headers, ("Via", "1.1 proxy")])
    verifier.verify(_set_header(request, "X-Forwarded-For", "192.0.2.1"))


TIMES: list[tuple[str, int, int, str]] = [
    # (case, seconds the signer's clock is off, signer's expires_in, reason)
    ("old", -400, 600, "signature expired \\(created is too old\\)"),
    ("expired", -120, 60, "signature expired"),
    ("future", 60, 300, "created is in the future"),
]


@pytest.mark.parametrize(
    ("case", "offset", "expires_in", "reason"), TIMES, ids=[t[0] for t in TIMES]
)
def test_stale_and_future_timestamps_are_refused(
    verifier: RequestVerifier, case: str, offset: int, expires_in: int, reason: str
) -> None:
    clock = FixedClock(NOW + dt.timedelta(seconds=offset))
    signer = signer_for("client-ed25519", "key-ed25519", clock=clock, expires_in=expires_in)
    with pytest.raises(AuthenticationFailed, match=reason):
        verifier.verify(sign(signer, "GET", URL))


@pytest.mark.parametrize("offset", [-320, 25], ids=["old-but-within-skew", "future-within-skew"])
def test_clock_skew_is_tolerated(verifier: RequestVerifier, offset: int) -> None:
    clock = FixedClock(NOW + dt.timedelta(seconds=offset))
    signer = signer_for("client-ed25519", "key-ed25519", clock=clock, expires_in=600)
    verifier.verify(sign(signer, "GET", URL))


def test_revoked_key_is_refused(verifier: RequestVerifier, keys: InMemoryKeyResolver) -> None:
    keys.revoke("key-ed25519", NOW, "laptop lost")
    with pytest.raises(AuthenticationFailed, match="key revoked"):
        verifier.verify(_signed_post())


def test_unknown_key_is_refused(verifier: RequestVerifier) -> None:
    request = sign(signer_for("client-ed25519", "no-such-key"), "GET", URL)
    with pytest.raises(AuthenticationFailed, match="unknown key"):
        verifier.verify(request)


def test_alg_must_match_the_registered_key(verifier: RequestVerifier) -> None:
    # key-rsa-pss is registered for rsa-pss-sha512; the client claims rsa-v1_5-sha256.
    signer = signer_for("client-rsa2048", "key-rsa-pss", SignatureAlgorithm.RSA_V1_5_SHA256)
    with pytest.raises(AuthenticationFailed, match="does not match the key's algorithm"):
        verifier.verify(sign(signer, "GET", URL))


def test_alg_may_be_omitted(verifier: RequestVerifier) -> None:
    request = HttpRequest("GET", URL)
    verifier.verify(sign_custom("client-ed25519", request, ["@method", "@target-uri"], PARAMS))


COVERAGE: list[tuple[str, list[str], bytes, str]] = [
    ("no @method", ["@target-uri"], b"", "does not cover @method"),
    ("no target", ["@method", "@path"], b"", "does not cover @target-uri"),
    ("no @query", ["@method", "@authority", "@path"], b"", "does not cover @target-uri"),
    ("no digest", ["@method", "@target-uri", "content-type"], BODY, "cover content-digest"),
]


@pytest.mark.parametrize(
    ("case", "components", "body", "reason"), COVERAGE, ids=[c[0] for c in COVERAGE]
)
def test_missing_coverage_is_refused(
    verifier: RequestVerifier, case: str, components: list[str], body: bytes, reason: str
) -> None:
    headers = [*JSON, ("Content-Digest", content_digest(body))] if body else JSON
    request = HttpRequest("POST", URL, headers, body)
    with pytest.raises(AuthenticationFailed, match=reason):
        verifier.verify(sign_custom("client-ed25519", request, components, PARAMS))


def test_authority_path_query_cover_the_target(verifier: RequestVerifier) -> None:
    request = HttpRequest("GET", URL)
    components = ["@method", "@authority", "@path", "@query"]
    verifier.verify(sign_custom("client-ed25519", request, components, PARAMS))


def test_body_without_content_digest_header_is_refused(verifier: RequestVerifier) -> None:
    request = HttpRequest("POST", URL, JSON, BODY)
    signed = sign_custom("client-ed25519", request, ["@method", "@target-uri"], PARAMS)
    with pytest.raises(AuthenticationFailed, match="cover content-digest"):
        verifier.verify(signed)


PARAM_CASES: list[tuple[str, dict[str, object], str]] = [
    ("no keyid", {"created": CREATED, "nonce": "n"}, "'keyid' is required"),
    ("no nonce", {"created": CREATED, "keyid": "key-ed25519"}, "'nonce' is required"),
    ("no created", {"nonce": "n", "keyid": "key-ed25519"}, "'created' is required"),
    ("created not int", {**PARAMS, "created": "now"}, "'created' must be an Integer"),
    ("keyid not string", {**PARAMS, "keyid": 7}, "'keyid' must be a String"),
    ("expires before created", {**PARAMS, "expires": CREATED - 1}, "expires is not after"),
    ("unknown parameter", {**PARAMS, "realm": "x"}, "unsupported signature parameter"),
    ("long nonce", {**PARAMS, "nonce": "n" * 300}, "nonce must be 1 to 256"),
]


@pytest.mark.parametrize(("case", "params", "reason"), PARAM_CASES, ids=[p[0] for p in PARAM_CASES])
def test_bad_signature_parameters_are_refused(
    verifier: RequestVerifier, case: str, params: dict[str, object], reason: str
) -> None:
    request = HttpRequest("GET", URL)
    signed = sign_custom("client-ed25519", request, ["@method", "@target-uri"], params)
    with pytest.raises(AuthenticationFailed, match=reason):
        verifier.verify(signed)


def test_expires_can_be_required(keys: InMemoryKeyResolver, clock: FixedClock) -> None:
    policy = VerifierPolicy(require_expires=True)
    strict = RequestVerifier(
        keys=keys, nonces=InMemoryNonceStore(clock=clock), clock=clock, policy=policy
    )
    request = sign_custom(
        "client-ed25519", HttpRequest("GET", URL), ["@method", "@target-uri"], PARAMS
    )
    with pytest.raises(AuthenticationFailed, match="'expires' is required"):
        strict.verify(request)
    strict.verify(sign(signer_for("client-ed25519", "key-ed25519"), "GET", URL))


def test_a_configured_label_picks_one_of_several(
    keys: InMemoryKeyResolver, clock: FixedClock
) -> None:
    policy = VerifierPolicy(label="sig1")
    labelled = RequestVerifier(
        keys=keys, nonces=InMemoryNonceStore(clock=clock), clock=clock, policy=policy
    )
    request = _signed_post()
    extra = [("Signature-Input", 'proxy=("@method");created=1'), ("Signature", "proxy=:AAAA:")]
    labelled.verify(_with(request, headers=[*request.headers, *extra]))


class _BrokenNonces:
    def check_and_store(
        self, key_id: str, nonce: str, ttl_seconds: int, *, created: dt.datetime
    ) -> bool:
        raise StoreUnavailable("nonce store unavailable: ConnectionError")


class _BrokenKeys:
    def get(self, key_id: str) -> None:
        raise StoreUnavailable("key store unavailable")


def test_nonce_store_outage_refuses(keys: InMemoryKeyResolver, clock: FixedClock) -> None:
    broken = RequestVerifier(keys=keys, nonces=_BrokenNonces(), clock=clock)
    with pytest.raises(StoreUnavailable):
        broken.verify(_signed_post())


def test_key_store_outage_refuses(clock: FixedClock) -> None:
    broken = RequestVerifier(
        keys=_BrokenKeys(), nonces=InMemoryNonceStore(clock=clock), clock=clock
    )
    with pytest.raises(StoreUnavailable):
        broken.verify(_signed_post())


def test_nonce_is_only_spent_by_authentic_requests(verifier: RequestVerifier) -> None:
    """A forged request reusing a nonce must not burn it for the genuine one."""
    request = _signed_post()
    with pytest.raises(AuthenticationFailed):
        verifier.verify(_with(request, method="PUT"))
    verifier.verify(request)


@pytest.mark.redis
@pytest.mark.parametrize("forgery", ["bad signature", "signature check raises"])
def test_a_forged_request_leaves_no_nonce_in_redis(
    keys: InMemoryKeyResolver,
    clock: FixedClock,
    redis_client: tuple[redis.Redis, str],
    monkeypatch: pytest.MonkeyPatch,
    forgery: str,
) -> None:
    """With Redis the nonce is claimed before the signature is checked, and given back."""
    client, prefix = redis_client
    verifier = RequestVerifier(
        keys=keys, nonces=RedisNonceStore(client, prefix=prefix, clock=clock), clock=clock
    )
    request = _signed_post()
    if forgery == "bad signature":
        with pytest.raises(AuthenticationFailed, match="signature does not verify"):
            verifier.verify(_with(request, method="PUT"))
    else:

        def explode(*args: object) -> bool:
            raise MemoryError

        monkeypatch.setattr(verify_module, "verify_signature", explode)
        with pytest.raises(MemoryError):
            verifier.verify(request)
        monkeypatch.undo()
    assert list(client.scan_iter(match=f"{prefix}[0-9]*")) == []  # no nonce (memory-start stays)
    verifier.verify(request)  # the genuine request still gets its nonce
    with pytest.raises(AuthenticationFailed, match="nonce reused"):
        verifier.verify(request)
    with pytest.raises(AuthenticationFailed, match="signature does not verify"):
        verifier.verify(_with(request, method="PUT"))  # a forgery still fails on its own
    assert len(list(client.scan_iter(match=f"{prefix}[0-9]*"))) == 1  # and left the nonce be


def test_reasons_carry_no_key_material(verifier: RequestVerifier) -> None:
    request = _set_header(_signed_post(), "Content-Type", "text/plain")
    signature = dict((k.lower(), v) for k, v in request.headers)["signature"]
    with pytest.raises(AuthenticationFailed) as info:
        verifier.verify(request)
    message = str(info.value)
    assert signature.split("=:")[1][:20] not in message
    assert "BEGIN" not in message
    assert info.value.data["reason"] == message
