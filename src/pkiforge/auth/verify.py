"""`RequestVerifier`: the one place a signed request is checked, for middleware and API alike.

Checks, cheapest first, each failure an `AuthenticationFailed` whose message is the reason:
the signature fields parse; the signature parameters are present and well typed (keyid,
created, nonce; expires when the policy asks); the time window holds; the signature covers
@method, the target (@target-uri, or @authority + @path + @query) and content-digest when
there is a body; the key is registered and active and `alg`, if given, is its algorithm; the
digest matches the body; the signature verifies; and the nonce is new. The nonce is claimed
just before the signature check and settled just after (`nonces.claim_nonce`): a Redis store
answers while the signature is checked, and a claim whose signature fails is abandoned, so
that only a request with a valid signature keeps a nonce. A nonce store that cannot answer
raises `StoreUnavailable`: the request is refused, never waved on. A store whose memory began
after the signature was created refuses it too (`nonces.memory_reset`): the client signs again.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from pkiforge.auth.algorithms import verify as verify_signature
from pkiforge.auth.canonical import (
    HttpRequest,
    SignatureEntry,
    parse_signatures,
    signature_base,
)
from pkiforge.auth.compat import LEGACY_SCHEME, parse_legacy_request, verify_legacy_signature
from pkiforge.auth.digest import verify_content_digest
from pkiforge.auth.keys import KeyResolver, RegisteredKey
from pkiforge.auth.nonces import NonceStore, claim_nonce
from pkiforge.auth.structured import BareItem, Params, Token, serialize_item
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import AuthenticationFailed, InvalidInput

__all__ = ["RequestVerifier", "VerifiedIdentity", "VerifierPolicy"]

_KNOWN_PARAMS = frozenset({"created", "expires", "nonce", "keyid", "alg", "tag"})
_TARGET_ALONE = frozenset({'"@target-uri"'})
_TARGET_PARTS = frozenset({'"@authority"', '"@path"', '"@query"'})
_MAX_ID_LENGTH = 256


@dataclass(frozen=True, slots=True)
class VerifierPolicy:
    """What the verifier demands; the defaults suit an API on the open network."""

    max_age_seconds: int = 300
    clock_skew_seconds: int = 30
    require_expires: bool = False
    label: str | None = None  # verify this Signature label; None: the message must carry one
    accept_legacy: bool = False  # also accept the origin documents' "PKI" scheme (compat.py)


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """Who signed a request, as established by `RequestVerifier.verify`."""

    key_id: str
    client_name: str
    algorithm: str
    scheme: str  # "rfc9421" or "pki-legacy"
    created: dt.datetime
    covered: tuple[str, ...] = ()


def _fail(reason: str) -> AuthenticationFailed:
    return AuthenticationFailed(reason, reason=reason)


class RequestVerifier:
    """Verifies RFC 9421 signed requests (and, if enabled, the legacy scheme)."""

    def __init__(
        self,
        *,
        keys: KeyResolver,
        nonces: NonceStore,
        clock: Clock | None = None,
        policy: VerifierPolicy | None = None,
    ) -> None:
        self.keys = keys
        self.nonces = nonces
        self.clock = clock or SystemClock()
        self.policy = policy or VerifierPolicy()

    def verify(self, request: HttpRequest) -> VerifiedIdentity:
        """Verify one request and say who signed it.

        Raises:
            AuthenticationFailed: any check failed; the message says which.
            StoreUnavailable: the key or nonce store cannot answer.
        """
        has_signature = request.field_lines("Signature-Input") or request.field_lines("Signature")
        if not has_signature and self.policy.accept_legacy and self._is_legacy(request):
            return self._verify_legacy(request)
        return self._verify_rfc9421(request)

    # RFC 9421

    def _verify_rfc9421(self, request: HttpRequest) -> VerifiedIdentity:
        entry = self._select(request)
        params = entry.params
        key_id = _string_param(params, "keyid")
        nonce = _string_param(params, "nonce")
        created, expires = self._timestamps(params)
        covered = _check_coverage(entry, request)
        key = self._active_key(key_id)
        self._check_alg(params, key)
        self._check_digest(request)
        try:
            base = signature_base(request, entry.covered)
        except InvalidInput as exc:
            raise _fail(exc.message) from exc
        self._check_signature_and_nonce(
            key_id,
            nonce,
            (created, expires),
            lambda: verify_signature(key.algorithm, key.public_key, entry.signature, base),
        )
        return VerifiedIdentity(
            key.key_id, key.client_name, str(key.algorithm), "rfc9421", created, covered
        )

    def _select(self, request: HttpRequest) -> SignatureEntry:
        try:
            entries = parse_signatures(request)
        except InvalidInput as exc:
            raise _fail(exc.message) from exc
        label = self.policy.label
        if label is not None:
            if label not in entries:
                raise _fail(f"no signature labelled {label!r}")
            return entries[label]
        if len(entries) != 1:
            raise _fail(f"expected exactly one signature, found {len(entries)}")
        return next(iter(entries.values()))

    def _timestamps(self, params: Params) -> tuple[dt.datetime, dt.datetime | None]:
        unknown = set(params) - _KNOWN_PARAMS
        if unknown:
            raise _fail(f"unsupported signature parameter(s): {', '.join(sorted(unknown))}")
        created = _time_param(params, "created")
        if created is None:
            raise _fail("signature parameter 'created' is required")
        expires = _time_param(params, "expires")
        if expires is None and self.policy.require_expires:
            raise _fail("signature parameter 'expires' is required")
        if expires is not None and expires <= created:
            raise _fail("expires is not after created")
        self._check_window(created, expires)
        return created, expires

    def _check_window(self, created: dt.datetime, expires: dt.datetime | None) -> None:
        now = self.clock.now()
        skew = dt.timedelta(seconds=self.policy.clock_skew_seconds)
        if created > now + skew:
            raise _fail("created is in the future")
        if created < now - skew - dt.timedelta(seconds=self.policy.max_age_seconds):
            raise _fail("signature expired (created is too old)")
        if expires is not None and expires < now - skew:
            raise _fail("signature expired")

    def _check_alg(self, params: Params, key: RegisteredKey) -> None:
        if "alg" not in params:
            return
        alg = _string_param(params, "alg")
        if alg != key.algorithm:
            raise _fail(f"alg {alg!r} does not match the key's algorithm {key.algorithm}")

    @staticmethod
    def _check_digest(request: HttpRequest) -> None:
        lines = request.field_lines("content-digest")
        if not lines and not request.body:
            return
        if not lines:
            raise _fail("missing Content-Digest for a request with a body")
        verify_content_digest(", ".join(lines), request.body)

    # shared by both schemes

    def _active_key(self, key_id: str) -> RegisteredKey:
        key = self.keys.get(key_id)
        if key is None:
            raise _fail("unknown key")
        if not key.is_active:
            raise _fail("key revoked")
        return key

    def _check_signature_and_nonce(
        self,
        key_id: str,
        nonce: str,
        times: tuple[dt.datetime, dt.datetime | None],
        signature_valid: Callable[[], bool],
    ) -> None:
        claim = claim_nonce(self.nonces, key_id, nonce, self._nonce_ttl(*times), times[0])
        try:
            valid = signature_valid()
        except BaseException:
            claim.abandon()
            raise
        if not valid:
            claim.abandon()
            raise _fail("signature does not verify")
        if not claim.settle():
            raise _fail("nonce reused")

    def _nonce_ttl(self, created: dt.datetime, expires: dt.datetime | None) -> int:
        # Remember the nonce for as long as the signature could still be accepted.
        policy = self.policy
        until = created + dt.timedelta(seconds=policy.max_age_seconds + policy.clock_skew_seconds)
        if expires is not None:
            until = min(until, expires + dt.timedelta(seconds=policy.clock_skew_seconds))
        return max(1, math.ceil((until - self.clock.now()).total_seconds()) + 1)

    # legacy "PKI" scheme (compat.py)

    @staticmethod
    def _is_legacy(request: HttpRequest) -> bool:
        return any(
            line.strip().startswith(LEGACY_SCHEME + " ")
            for line in request.field_lines("Authorization")
        )

    def _verify_legacy(self, request: HttpRequest) -> VerifiedIdentity:
        legacy = parse_legacy_request(request)
        _check_id(legacy.key_id, "key id")
        _check_id(legacy.nonce, "nonce")
        created = _from_timestamp(legacy.timestamp, "X-Timestamp")
        self._check_window(created, None)
        key = self._active_key(legacy.key_id)
        self._check_signature_and_nonce(
            legacy.key_id,
            legacy.nonce,
            (created, None),
            lambda: verify_legacy_signature(key.public_key, legacy.signature, legacy.payload),
        )
        return VerifiedIdentity(
            key.key_id, key.client_name, "rsa-pss-sha256", "pki-legacy", created
        )


def _check_coverage(entry: SignatureEntry, request: HttpRequest) -> tuple[str, ...]:
    covered = tuple(serialize_item(item) for item in entry.covered.items)
    present = set(covered)
    if '"@method"' not in present:
        raise _fail("signature does not cover @method")
    if not (present >= _TARGET_ALONE or present >= _TARGET_PARTS):
        raise _fail("signature does not cover @target-uri (or @authority, @path and @query)")
    needs_digest = bool(request.body) or bool(request.field_lines("content-digest"))
    if needs_digest and '"content-digest"' not in present:
        raise _fail("signature does not cover content-digest")
    return covered


def _string_param(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None:
        raise _fail(f"signature parameter {name!r} is required")
    if not isinstance(value, str) or isinstance(value, Token):
        raise _fail(f"signature parameter {name!r} must be a String")
    _check_id(value, name)
    return value


def _check_id(value: str, what: str) -> None:
    if not value or len(value) > _MAX_ID_LENGTH:
        raise _fail(f"{what} must be 1 to {_MAX_ID_LENGTH} characters")


def _time_param(params: Params, name: str) -> dt.datetime | None:
    value: BareItem | None = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"signature parameter {name!r} must be an Integer")
    return _from_timestamp(value, name)


def _from_timestamp(value: int, name: str) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _fail(f"{name} is not a valid Unix time") from exc
