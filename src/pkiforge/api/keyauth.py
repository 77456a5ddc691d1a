"""Request signing for pkiforge's own API: the key registry and the ONE shared verifier.

The composition root (wiring.py) builds it once per process: the SQL key registry behind a
short cache (the replica that revokes a key forgets it at once), the nonce store the settings
ask for, brute-force protection, metrics in the app's registry and buffered usage bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.keys import CachedKeyResolver, KeyStatus
from pkiforge.auth.metrics import AuthMetrics, Outcome
from pkiforge.auth.ratelimit import FailureTracker
from pkiforge.auth.registry import KeyRegistry
from pkiforge.auth.structured import parse_dictionary
from pkiforge.auth.usage import AuthEvent, UsageRecorder
from pkiforge.auth.verify import RequestVerifier, VerifiedIdentity
from pkiforge.clock import Clock
from pkiforge.errors import (
    AuthenticationFailed,
    InvalidInput,
    PkiError,
    RateLimited,
    StoreUnavailable,
)
from pkiforge.store.key_repos import SqlKeyRepository

__all__ = ["KeyAuth", "KeyCountCollector", "claimed_key_id"]


def claimed_key_id(request: HttpRequest) -> str | None:
    """The key id a request names (RFC 9421 `keyid` or `PKI <key_id>:`), unverified."""
    lines = request.field_lines("Signature-Input")
    try:  # Signature-Input alone: a mangled Signature must still be counted against its key
        members = parse_dictionary(", ".join(lines)) if lines else {}
    except InvalidInput:
        members = {}
    for member in members.values():
        value = member.params.get("keyid")
        if isinstance(value, str):
            return value
    for line in request.field_lines("Authorization"):
        scheme, _, credentials = line.strip().partition(" ")
        if scheme == "PKI" and ":" in credentials:
            return credentials.split(":", 1)[0].strip() or None
    return None


class KeyCountCollector(Collector):
    """`pkiforge_auth_keys{status}`: active and revoked signing keys, counted on scrape."""

    def __init__(self, repo: SqlKeyRepository) -> None:
        self._repo = repo

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self._repo.count_by_status()
        except PkiError:  # the store is down: report nothing rather than fail the scrape
            return
        gauge = GaugeMetricFamily(
            "pkiforge_auth_keys", "Registered request-signing keys by status.", labels=["status"]
        )
        for status in KeyStatus:
            gauge.add_metric([status.value], counts.get(status.value, 0))
        yield gauge


@dataclass
class KeyAuth:
    """The key registry and signed-request verification of one API process."""

    registry: KeyRegistry
    verifier: RequestVerifier
    resolver: CachedKeyResolver
    failures: FailureTracker
    metrics: AuthMetrics
    recorder: UsageRecorder
    clock: Clock
    backend: str
    trusted_origin: str | None = None

    def authenticate(self, request: HttpRequest, address: str | None) -> VerifiedIdentity:
        """Verify a signed request, count it and record it (blocking: run it in a thread).

        Raises:
            AuthenticationFailed: 401. RateLimited: 429, the address is cooling off.
            StoreUnavailable: 503, a store cannot answer.
        """
        client = address or "unknown"
        started = time.perf_counter()
        try:
            self.failures.check(client)
            identity = self.verifier.verify(request)
        except RateLimited as exc:
            self._done(request, address, Outcome.BLOCKED, exc.message)
            raise
        except AuthenticationFailed as exc:
            self._done(request, address, Outcome.FAILURE, exc.message)
            try:
                self.failures.record_failure(client)
            except StoreUnavailable:
                self.metrics.attempt(Outcome.UNAVAILABLE)  # refused anyway
            raise
        except StoreUnavailable as exc:
            self._done(request, address, Outcome.UNAVAILABLE, exc.message)
            raise
        finally:
            self.metrics.observe(time.perf_counter() - started)
        self._done(request, address, Outcome.SUCCESS, None, identity)
        return identity

    def _done(
        self,
        request: HttpRequest,
        address: str | None,
        outcome: Outcome,
        reason: str | None,
        identity: VerifiedIdentity | None = None,
    ) -> None:
        self.metrics.attempt(outcome, identity.scheme if identity else "")
        key_id = identity.key_id if identity else claimed_key_id(request)
        path = request.target_uri.split("://", 1)[-1].partition("/")[2]
        self.recorder.record(
            AuthEvent(
                at=self.clock.now(),
                key_id=key_id,
                address=address,
                method=request.method,
                path="/" + path,
                outcome=outcome.value,
                reason=reason,
                known_key=identity is not None or self._known(key_id),
            )
        )

    def _known(self, key_id: str | None) -> bool:
        if key_id is None:
            return False
        try:
            return self.resolver.get(key_id) is not None
        except PkiError:
            return False

    def start(self) -> None:
        """Start writing bookkeeping in the background."""
        self.recorder.start()

    def close(self) -> None:
        """Write what is left of the bookkeeping."""
        self.recorder.close()
