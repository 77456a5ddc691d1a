"""One-time enrollment tokens: the bootstrap of a service's first certificate.

A token reads `pkf_<token_id>.<secret>`; the store keeps only the SHA-256 of the secret. It is
bound to one service id and one profile, expires, and is spent by one conditional UPDATE
(`used_at IS NULL AND expires_at > now`), so two replicas cannot both accept it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from pkiforge.ca.context import CAContext
from pkiforge.ca.models import OPERATOR, Actor
from pkiforge.ca.profiles import get_profile
from pkiforge.ca.registry_models import REVOKED_MARK, EnrollmentToken
from pkiforge.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from pkiforge.x509.names import validate_service_id

PREFIX = "pkf_"
MAX_TTL = dt.timedelta(days=30)
_FORMAT = re.compile(r"^pkf_([0-9a-f]{16})\.([A-Za-z0-9_-]{32,64})$")


@dataclass(frozen=True)
class TokenSecret:
    """A parsed bearer token: which row, and the hash of what the caller showed."""

    token_id: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_token(text: str) -> TokenSecret:
    """Split `pkf_<id>.<secret>`.

    Raises:
        AuthenticationFailed: not a token of ours.
    """
    match = _FORMAT.match(text.strip())
    if match is None:
        raise AuthenticationFailed(
            f"malformed enrollment token: expected {PREFIX}<16 hex digits>.<secret>, "
            "as `pkiforge token create` prints it",
            reason="bad-token",
        )
    return TokenSecret(match.group(1), hash_secret(match.group(2)))


class EnrollmentService:
    """Mint, list, withdraw and redeem enrollment tokens."""

    def __init__(self, ctx: CAContext) -> None:
        self.ctx = ctx

    def create(
        self,
        service_id: str,
        ttl: dt.timedelta,
        *,
        profile: str = "service",
        actor: Actor = OPERATOR,
    ) -> tuple[EnrollmentToken, str]:
        """A new token and its text (shown once, never stored).

        Raises:
            InvalidInput: bad service id, profile or lifetime.
        """
        validate_service_id(service_id, field="service")
        get_profile(self.ctx.config.profiles, profile)
        if ttl <= dt.timedelta(0) or ttl > MAX_TTL:
            raise InvalidInput(
                f"token lifetime must be between 1s and {MAX_TTL.days}d", field="ttl"
            )
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = self.ctx.clock.now()
        token = EnrollmentToken(
            token_id=token_id,
            secret_hash=hash_secret(secret),
            service_id=service_id,
            profile=profile,
            created_at=now,
            expires_at=now + ttl,
            created_by=str(actor),
        )
        with self.ctx.store.transaction() as tx:
            tx.tokens.add(token)
            self.ctx.audit(
                tx,
                actor,
                "token.create",
                token_id,
                {"service": service_id, "profile": profile, "expires_at": token.expires_at},
            )
        return token, f"{PREFIX}{token_id}.{secret}"

    def list(self, service_id: str | None = None) -> list[EnrollmentToken]:
        with self.ctx.store.transaction(readonly=True) as tx:
            return tx.tokens.list(service_id)

    def revoke(self, token_id: str, actor: Actor = OPERATOR) -> EnrollmentToken:
        """Withdraw an unused token.

        Raises:
            NotFound: unknown id. Conflict: already used, withdrawn or expired.
        """
        now = self.ctx.clock.now()
        with self.ctx.store.transaction() as tx:
            token = tx.tokens.get(token_id)
            if token is None:
                raise NotFound(f"no enrollment token {token_id!r}", field="token_id")
            if not tx.tokens.consume(token_id, token.secret_hash, now, REVOKED_MARK):
                raise Conflict(
                    f"token {token_id} is {token.state(now)}; nothing to revoke", field="token_id"
                )
            self.ctx.audit(tx, actor, "token.revoke", token_id, {"service": token.service_id})
            return tx.tokens.get(token_id) or token

    def check(self, secret: TokenSecret) -> EnrollmentToken:
        """The token, if it is ours, unused and unexpired (nothing is spent yet).

        Raises:
            AuthenticationFailed: unknown, wrong secret, used, withdrawn or expired.
        """
        with self.ctx.store.transaction(readonly=True) as tx:
            token = tx.tokens.get(secret.token_id)
        if token is None or not hmac.compare_digest(token.secret_hash, secret.secret_hash):
            raise AuthenticationFailed("enrollment token is not valid", reason="bad-token")
        state = token.state(self.ctx.clock.now())
        if state != "active":
            raise AuthenticationFailed(f"enrollment token is {state}", reason=f"token-{state}")
        return token

    def spend(self, secret: TokenSecret, address: str | None) -> None:
        """Mark the token used; exactly one caller across all replicas succeeds.

        Raises:
            AuthenticationFailed: someone else spent it first (or it just expired).
        """
        with self.ctx.store.transaction() as tx:
            won = tx.tokens.consume(
                secret.token_id, secret.secret_hash, self.ctx.clock.now(), address or "-"
            )
        if not won:
            raise AuthenticationFailed("enrollment token is used", reason="token-used")

    def release(self, token_id: str) -> None:
        """Give a spent token back when the request it paid for was refused."""
        with self.ctx.store.transaction() as tx:
            tx.tokens.release(token_id)

    def bind(self, token_id: str, serial: str) -> None:
        """Record which certificate the token bought."""
        with self.ctx.store.transaction() as tx:
            tx.tokens.set_certificate(token_id, serial)
