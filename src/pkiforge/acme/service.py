"""The ACME use-cases (RFC 8555 §7): nonces, accounts, orders, challenges, finalize, revoke.

Each takes a parsed, not yet verified request (`acme/jws.py`) and the values the router read
from the URL, checks the signature and spends the nonce, then acts through the ports
(`acme/ports.py`). Issuance and name checks are the API's own pipeline, handed in by the
composition root: an account orders as the service its external binding named.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from cryptography import x509

from pkiforge.acme import jws
from pkiforge.acme.models import (
    Account,
    Authorization,
    Challenge,
    ExternalKey,
    Identifier,
    Order,
    Problem,
    Status,
    authz_status,
    order_status,
)
from pkiforge.acme.ports import (
    AcmeEvents,
    AcmeRepository,
    CheckNames,
    Fetch,
    Issue,
    NoEvents,
    Submit,
)
from pkiforge.clock import Clock
from pkiforge.errors import (
    AcmeError,
    AuthenticationFailed,
    BadPassphrase,
    Conflict,
    InvalidCSR,
    InvalidInput,
    InvalidName,
    NotFound,
    PermissionDenied,
    PkiError,
    PolicyViolation,
    RateLimited,
    StoreUnavailable,
)
from pkiforge.x509.names import SubjectName, validate_dns_name

log = logging.getLogger("pkiforge.acme")

MAX_IDENTIFIERS = 100
MAX_ORDERS_LISTED = 100
EAB_KEY_BYTES = 32
# Revoke a certificate for a service: (service_id, serial, RFC 5280 reason code)
Revoke = Callable[[str, int, int], None]


def new_id() -> str:
    return secrets.token_urlsafe(16)


def key_authorization(token: str, thumbprint: str) -> str:
    """RFC 8555 §8.1: token || '.' || base64url(JWK thumbprint)."""
    return f"{token}.{thumbprint}"


def new_external_key(service_id: str, now: dt.datetime) -> ExternalKey:
    """A new binding key for `service_id` (RFC 8555 §7.3.4); its MAC key is shown once."""
    return ExternalKey(
        secrets.token_urlsafe(12), service_id, secrets.token_bytes(EAB_KEY_BYTES), now
    )


@dataclass(frozen=True)
class Lifetimes:
    nonce: dt.timedelta = dt.timedelta(hours=1)
    order: dt.timedelta = dt.timedelta(days=1)
    # a validation running longer than this was lost with its process: started again
    stale: dt.timedelta = dt.timedelta(minutes=1)


@dataclass
class AcmeService:
    """ACME over one repository; `issue`, `check_names` and `revoke` are the API's policy."""

    repo: AcmeRepository
    clock: Clock
    issue: Issue
    check_names: CheckNames
    revoke_certificate: Revoke
    fetch: Fetch
    submit: Submit
    lifetimes: Lifetimes = Lifetimes()
    # the stored certificate of a serial (revocation by the certificate's key)
    certificate_of: Callable[[int], x509.Certificate | None] = lambda _: None
    events: AcmeEvents = field(default_factory=NoEvents)

    # nonces (§7.2) ------------------------------------------------------------------------

    def new_nonce(self) -> str:
        nonce = secrets.token_urlsafe(16)
        now = self.clock.now()
        self.repo.add_nonce(nonce, now + self.lifetimes.nonce, now)
        return nonce

    def _spend(self, request: jws.SignedRequest) -> None:
        if not self.repo.take_nonce(request.nonce, self.clock.now()):
            raise AcmeError("badNonce", "the nonce is unknown, expired or already used")

    # accounts (§7.3) ----------------------------------------------------------------------

    def new_account(self, request: jws.SignedRequest) -> tuple[Account, bool]:
        """The account of the request's key, made if new: (account, created).

        Raises:
            AcmeError: accountDoesNotExist (onlyReturnExisting), externalAccountRequired,
                unauthorized (a bad or used binding), malformed, badNonce.
        """
        if request.jwk is None:
            raise AcmeError("malformed", "newAccount must be signed with a jwk, not a kid")
        key = jws.public_key(request.jwk)
        jws.verify(request, key)
        self._spend(request)
        payload = request.json()
        thumbprint = jws.thumbprint(key)
        existing = self.repo.account_by_thumbprint(thumbprint)
        if existing is not None:
            return existing, False
        if payload.get("onlyReturnExisting") is True:
            raise AcmeError("accountDoesNotExist", "no account has this key")
        contact = _contact(payload.get("contact"))
        binding = payload.get("externalAccountBinding")
        if binding is None:
            raise AcmeError(
                "externalAccountRequired",
                "this server binds accounts to services: send an externalAccountBinding "
                "(pkiforge acme eab create --service ID)",
            )
        claim = jws.binding_claim(binding, str(request.header["url"]))
        external = self.repo.external_key(claim.kid)
        if external is None:
            raise AcmeError("unauthorized", "unknown externalAccountBinding key id", status=403)
        if external.account_id is not None:
            raise AcmeError(
                "unauthorized", "this externalAccountBinding key is already used", status=403
            )
        jws.verify_binding(claim, external.mac_key, request.jwk)
        account = Account(
            new_id(),
            thumbprint,
            request.jwk,
            external.service_id,
            Status.VALID,
            contact,
            self.clock.now(),
            external.kid,
        )
        try:
            self.repo.add_account(account)
        except Conflict:
            # the same key raced itself, or the binding key was used meanwhile
            raced = self.repo.account_by_thumbprint(thumbprint)
            if raced is not None:
                return raced, False
            raise AcmeError(
                "unauthorized", "this externalAccountBinding key is already used", status=403
            ) from None
        return account, True

    def account_for(self, request: jws.SignedRequest, account_id: str | None) -> Account:
        """The valid account whose URL is the request's kid, its signature and nonce checked.

        Raises:
            AcmeError: malformed (a jwk where a kid belongs), accountDoesNotExist,
                unauthorized (deactivated), malformed (bad signature), badNonce.
        """
        if request.kid is None:
            raise AcmeError("malformed", "this request must be signed with the account's kid")
        account = self.repo.account(account_id) if account_id else None
        if account is None:
            raise AcmeError("accountDoesNotExist", "no account has this kid", status=400)
        jws.verify(request, jws.public_key(account.jwk))
        self._spend(request)
        if account.status is not Status.VALID:
            raise AcmeError("unauthorized", f"the account is {account.status.value}", status=403)
        return account

    def update_account(self, account: Account, payload: dict[str, Any]) -> Account:
        """Deactivate the account (§7.3.6) or change its contacts (§7.3.2); {} reads it.

        Raises:
            AcmeError: malformed, unsupportedContact.
        """
        status = payload.get("status")
        if status is not None:
            if status != Status.DEACTIVATED.value:
                raise AcmeError("malformed", "an account's status may only become deactivated")
            self.repo.deactivate_account(account.account_id)
            return replace(account, status=Status.DEACTIVATED)
        if "contact" in payload:
            raise AcmeError("malformed", "changing an account's contacts is not supported yet")
        return account

    def orders_of(self, account: Account) -> list[Order]:
        """The account's newest MAX_ORDERS_LISTED orders (§7.1.2.1)."""
        return self.repo.orders_of(account.account_id, MAX_ORDERS_LISTED)

    def change_key(self, account: Account, request: jws.SignedRequest, account_url: str) -> None:
        """Roll the account over to the key of the inner JWS (§7.3.5).

        The outer request is already verified (signed by the account's current key). The
        inner JWS is signed by the new key, names it in `jwk`, carries the same url and no
        nonce, and says which account and old key it replaces.

        Raises:
            AcmeError: malformed (inner JWS or payload wrong), conflict (key already used).
        """
        inner_raw = request.payload
        inner = jws.parse(
            inner_raw, str(request.header["url"]), max_bytes=len(inner_raw), nonce=False
        )
        if inner.jwk is None:
            raise AcmeError("malformed", "the inner JWS of keyChange must carry a jwk")
        new_key = jws.public_key(inner.jwk)
        jws.verify(inner, new_key)
        payload = inner.json()
        if payload.get("account") != account_url:
            raise AcmeError("malformed", "keyChange names another account")
        old = payload.get("oldKey")
        if not isinstance(old, dict) or jws.thumbprint_of(old) != account.thumbprint:
            raise AcmeError("malformed", "keyChange oldKey is not the account's key")
        thumbprint = jws.thumbprint(new_key)
        existing = self.repo.account_by_thumbprint(thumbprint)
        if existing is not None:
            raise AcmeError("conflict", "another account has this key", status=409)
        try:
            self.repo.change_key(account.account_id, thumbprint, inner.jwk)
        except Conflict:
            raise AcmeError("conflict", "another account has this key", status=409) from None

    # orders (§7.4) ------------------------------------------------------------------------

    def new_order(self, account: Account, payload: dict[str, Any], issuer: str) -> Order:
        """An order for the payload's identifiers, which the account's service may have.

        Raises:
            AcmeError: malformed, unsupportedIdentifier, rejectedIdentifier.
        """
        identifiers = _identifiers(payload.get("identifiers"))
        if "notBefore" in payload or "notAfter" in payload:
            raise AcmeError("malformed", "notBefore and notAfter are not supported")
        names = [SubjectName("DNS", i.value) for i in identifiers]
        try:
            self.check_names(account.service_id, names)
        except PermissionDenied as exc:
            raise AcmeError("rejectedIdentifier", str(exc), status=403) from None
        now = self.clock.now()
        expires = now + self.lifetimes.order
        order_id = new_id()
        authorizations = [
            Authorization(
                authz_id := new_id(),
                order_id,
                identifier,
                Status.PENDING,
                expires,
                (Challenge(new_id(), authz_id, "http-01", new_token(), Status.PENDING),),
            )
            for identifier in identifiers
        ]
        order = Order(
            order_id,
            account.account_id,
            Status.PENDING,
            identifiers,
            tuple(a.authz_id for a in authorizations),
            expires,
            issuer,
            now,
        )
        self.repo.add_order(order, authorizations)
        self.events.order(Status.PENDING)
        return order

    def order(self, account: Account, order_id: str) -> tuple[Order, Status]:
        """The account's order and its current status.

        Raises:
            AcmeError: malformed (404): no such order, or another account's.
        """
        order = self.repo.order(order_id)
        if order is None or order.account_id != account.account_id:
            raise AcmeError("malformed", "no such order", status=404)
        return order, order_status(order, self.repo.authorizations(order_id), self.clock.now())

    def authorization(self, account: Account, authz_id: str) -> tuple[Authorization, Status]:
        """The account's authorization and its current status.

        Raises:
            AcmeError: malformed (404).
        """
        authz = self.repo.authorization(authz_id)
        if authz is None:
            raise AcmeError("malformed", "no such authorization", status=404)
        self.order(account, authz.order_id)  # the account's own, else 404
        self.resume(account, authz)  # clients poll here while validation runs
        return authz, authz_status(authz, self.clock.now())

    # challenges (§7.5.1, §8.3) ------------------------------------------------------------

    def respond(self, account: Account, challenge_id: str) -> tuple[Challenge, Authorization]:
        """Start validating the challenge off the request path (once); return it as it is.

        Raises:
            AcmeError: malformed (404), malformed (the authorization is no longer pending).
        """
        challenge = self.repo.challenge(challenge_id)
        if challenge is None:
            raise AcmeError("malformed", "no such challenge", status=404)
        authz, status = self.authorization(account, challenge.authz_id)
        if challenge.status is Status.PENDING and status is not Status.PENDING:
            raise AcmeError("malformed", f"the authorization is {status.value}")
        if challenge.status in (Status.PENDING, Status.PROCESSING):
            self._start(challenge, authz, account.thumbprint)
            challenge = self.repo.challenge(challenge_id) or challenge
        return challenge, authz

    def _start(self, challenge: Challenge, authz: Authorization, thumbprint: str) -> None:
        """Validate off the request path, once: unless it runs already (and is not lost)."""
        now = self.clock.now()
        if self.repo.start_challenge(challenge.challenge_id, now, now - self.lifetimes.stale):
            self.submit(partial(self.validate, challenge, authz, thumbprint))

    def resume(self, account: Account, authz: Authorization) -> None:
        """Start again a validation of `authz` that its process lost (died while it ran)."""
        now = self.clock.now()
        for challenge in authz.challenges:
            started = challenge.started_at
            if (
                challenge.status is Status.PROCESSING
                and started
                and started < now - self.lifetimes.stale
            ):
                self._start(challenge, authz, account.thumbprint)

    def validate(self, challenge: Challenge, authz: Authorization, thumbprint: str) -> None:
        """Run one http-01 validation and record its outcome; never raises."""
        expected = key_authorization(challenge.token, thumbprint)
        error: Problem | None = None
        try:
            body = self.fetch(authz.identifier.value, challenge.token)
            # RFC 8555 §8.3: the body is the key authorization; trailing whitespace is tolerated
            if body.strip() != expected.encode():
                error = Problem("incorrectResponse", "the response is not the key authorization")
        except AcmeError as exc:
            error = Problem(exc.kind, str(exc))
        except Exception:
            log.exception("http-01 validation of challenge %s failed", challenge.challenge_id)
            error = Problem("serverInternal", "validation failed inside the server", 500)
        status = Status.INVALID if error is not None else Status.VALID
        validated = self.clock.now() if error is None else None
        try:
            self.repo.finish_challenge(challenge, status, validated, error)
        except PkiError:
            log.exception("recording challenge %s failed", challenge.challenge_id)
            return
        self.events.challenge(challenge.type, error.kind if error is not None else None)

    # finalize and certificate (§7.4) -----------------------------------------------------

    def finalize(self, account: Account, order_id: str, payload: dict[str, Any]) -> Order:
        """Issue the order's certificate from the payload's CSR through the API's pipeline.

        Raises:
            AcmeError: orderNotReady, badCSR, rejectedIdentifier, unauthorized, malformed.
        """
        order, status = self.order(account, order_id)
        if status is not Status.READY:
            raise AcmeError("orderNotReady", f"the order is {status.value}", status=403)
        csr = _csr(payload.get("csr"), order.identifiers)
        if not self.repo.move_order(order_id, order.status, Status.PROCESSING):
            raise AcmeError("orderNotReady", "the order is being finalized", status=403)
        try:
            serial = self.issue(account.service_id, order.issuer, csr)
        except PkiError as exc:
            problem = problem_of(exc)
            self.repo.move_order(order_id, Status.PROCESSING, Status.INVALID, error=problem)
            self.events.order(Status.INVALID)
            raise AcmeError(problem.kind, problem.detail, status=problem.status) from None
        except Exception:
            # never leave the order processing for good: invalid, and the caller logs the bug
            problem = Problem("serverInternal", "issuance failed inside the server", 500)
            self.repo.move_order(order_id, Status.PROCESSING, Status.INVALID, error=problem)
            self.events.order(Status.INVALID)
            raise
        self.repo.move_order(order_id, Status.PROCESSING, Status.VALID, serial=serial)
        self.events.order(Status.VALID)
        return self.order(account, order_id)[0]

    def certificate(self, account: Account, order_id: str) -> int:
        """The serial of the account's valid order's certificate.

        Raises:
            AcmeError: malformed (404), orderNotReady (no certificate yet).
        """
        order, _ = self.order(account, order_id)
        if order.certificate_serial is None:
            raise AcmeError("orderNotReady", "the order has no certificate", status=403)
        return order.certificate_serial

    # revocation (§7.6), by the account that ordered the certificate ----------------------

    def revoke(self, account: Account, payload: dict[str, Any]) -> None:
        """Revoke a certificate the account ordered.

        Raises:
            AcmeError: malformed, badRevocationReason, unauthorized, alreadyRevoked.
        """
        cert, reason = _revocation(payload)
        order = self.repo.order_by_serial(cert.serial_number)
        if order is None or order.account_id != account.account_id:
            raise AcmeError(
                "unauthorized", "this account did not order this certificate", status=403
            )
        self._revoke(account.service_id, cert.serial_number, reason)

    def revoke_by_key(self, request: jws.SignedRequest) -> None:
        """Revoke a certificate ordered over ACME, proven by its own key (`jwk`, §7.6).

        The certificate sent must be the one stored, and the request signed by its key; it is
        revoked as the service of the account that ordered it.

        Raises:
            AcmeError: malformed, badRevocationReason, unauthorized, alreadyRevoked, badNonce.
        """
        assert request.jwk is not None
        key = jws.public_key(request.jwk)
        jws.verify(request, key)
        self._spend(request)
        cert, reason = _revocation(request.json())
        stored = self.certificate_of(cert.serial_number)
        if stored is None or stored != cert or not jws.same_key(key, stored.public_key()):
            raise AcmeError(
                "unauthorized", "the request is not signed by this certificate's key", status=403
            )
        order = self.repo.order_by_serial(cert.serial_number)
        owner = self.repo.account(order.account_id) if order is not None else None
        if owner is None:
            raise AcmeError(
                "unauthorized", "only certificates ordered over ACME are revoked here", status=403
            )
        self._revoke(owner.service_id, cert.serial_number, reason)

    def _revoke(self, service_id: str, serial: int, reason: int) -> None:
        try:
            self.revoke_certificate(service_id, serial, reason)
        except Conflict:
            raise AcmeError("alreadyRevoked", "the certificate is already revoked") from None


def _revocation(payload: dict[str, Any]) -> tuple[x509.Certificate, int]:
    """The certificate and reason of a revokeCert payload.

    Raises:
        AcmeError: malformed, badRevocationReason.
    """
    der = jws.b64decode(str(payload.get("certificate", "")), "certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise AcmeError("malformed", "certificate is not a DER certificate") from None
    reason = payload.get("reason", 0)
    if not isinstance(reason, int) or isinstance(reason, bool) or reason not in REASONS:
        raise AcmeError("badRevocationReason", f"reason {reason!r} is not allowed")
    return cert, reason


# RFC 5280 §5.3.1 codes a subscriber may give (RFC 8555 §7.6); 2 and 8 belong to CAs
REASONS = frozenset({0, 1, 3, 4, 5, 9})


def new_token() -> str:
    """A challenge token: 128 bits of entropy, base64url (RFC 8555 §8.1)."""
    return secrets.token_urlsafe(16)


def problem_of(exc: PkiError) -> Problem:
    """An issuance error as the ACME problem that names it."""
    if isinstance(exc, AcmeError):
        return Problem(exc.kind, str(exc), exc.status)
    if isinstance(exc, NotFound):
        return Problem("malformed", str(exc), 404)
    if isinstance(exc, Conflict):
        return Problem("malformed", str(exc), 409)
    if isinstance(exc, AuthenticationFailed):
        return Problem("unauthorized", str(exc), 403)
    if isinstance(exc, StoreUnavailable | BadPassphrase):
        return Problem("serverInternal", str(exc), 503)
    if isinstance(exc, InvalidCSR):
        return Problem("badCSR", str(exc))
    if isinstance(exc, PermissionDenied):
        return Problem("rejectedIdentifier" if _names(exc) else "unauthorized", str(exc), 403)
    if isinstance(exc, PolicyViolation | InvalidName):
        return Problem("rejectedIdentifier", str(exc))
    if isinstance(exc, InvalidInput):
        return Problem("badCSR", str(exc))
    if isinstance(exc, RateLimited):
        return Problem("rateLimited", str(exc), 429)
    return Problem("serverInternal", str(exc), 500)


def _names(exc: PermissionDenied) -> bool:
    return exc.data.get("reason") in {"name-owned", "name-not-allowed"}


def _contact(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AcmeError("malformed", "contact must be a list of URLs")
    for url in value:
        if not url.startswith("mailto:") or len(url) > 254:
            raise AcmeError("unsupportedContact", f"contact {url!r} is not a mailto: URL")
    return tuple(value)


def _identifiers(value: Any) -> tuple[Identifier, ...]:
    if not isinstance(value, list) or not value:
        raise AcmeError("malformed", "identifiers must be a non-empty list")
    if len(value) > MAX_IDENTIFIERS:
        raise AcmeError("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers an order")
    out: list[Identifier] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise AcmeError("malformed", "each identifier needs a type and a value")
        if item.get("type") != "dns":
            raise AcmeError(
                "unsupportedIdentifier", f"identifier type {item.get('type')!r} is not served"
            )
        try:
            name = validate_dns_name(item["value"], allow_wildcard=True, field="identifiers")
        except InvalidName as exc:
            raise AcmeError("rejectedIdentifier", str(exc)) from None
        if name.startswith("*."):
            raise AcmeError(
                "rejectedIdentifier", f"{name}: wildcards need dns-01, which is not served yet"
            )
        identifier = Identifier("dns", name)
        if identifier not in out:
            out.append(identifier)
    return tuple(out)


def _csr(value: Any, identifiers: Sequence[Identifier]) -> x509.CertificateSigningRequest:
    """The finalize CSR; it must name exactly the order's identifiers (RFC 8555 §7.4).

    Raises:
        AcmeError: badCSR.
    """
    if not isinstance(value, str):
        raise AcmeError("malformed", "finalize needs a csr")
    der = jws.b64decode(value, "csr")
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError:
        raise AcmeError("badCSR", "csr is not a DER PKCS#10 request") from None
    if not csr.is_signature_valid:
        raise AcmeError("badCSR", "the CSR's signature does not verify")
    wanted = {i.value for i in identifiers}
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    if any(not isinstance(n, x509.DNSName) for n in san):
        raise AcmeError("badCSR", "the CSR may name DNS names only")
    names = {n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)}
    cns = [a.value for a in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    names |= {str(cn).lower() for cn in cns}
    if names != wanted:
        raise AcmeError("badCSR", "the CSR's names differ from the order's identifiers")
    return csr
