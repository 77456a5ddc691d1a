"""The renewal agent: renew a service's certificate over mTLS before it expires, crash-safely.

One pass (`check`) reads the live pair, decides with the shared `RenewalPolicy`, makes a new
key and CSR on this host (or reuses the key), renews over mTLS with the current certificate,
installs the new pair with `install_pair` (old-or-new on any crash, previous pair kept as
`.bak`) and then runs the hook. `run` repeats passes until stopped, backing off (capped,
jittered) while the server cannot help, and never touching the files on a failure.

The CA bundle follows the PKI (`client/bundle.py`): it is fetched with every renewal and, on a
pass with nothing to renew, once per `bundle_interval`; a changed bundle is installed and
announced (`on_bundle`), so the successor of a rotated intermediate is trusted here before
peers present certificates it issued, without a manual step.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

from cryptography import x509

from pkiforge.client.bundle import install_bundle
from pkiforge.client.csr import csr_for_renewal, key_pem, key_type_of, load_key
from pkiforge.client.enroll import same_key
from pkiforge.client.errors import retryable
from pkiforge.client.models import Certificate
from pkiforge.client.tls import Identity
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import IntegrityError, PkiError, RateLimited
from pkiforge.pairs import Pair, install_pair
from pkiforge.renewal import Backoff, RenewalPolicy
from pkiforge.x509.keys import generate_key

__all__ = ["AgentConfig", "Outcome", "RenewalAgent"]

log = logging.getLogger("pkiforge.agent")
Hook = Callable[[Certificate], None]
FAILURES = (PkiError, OSError, ValueError)  # OSError covers ssl.SSLError and file problems


class Renewer(Protocol):
    """What the agent needs from a client: renew over mTLS (a `PkiClient` is one)."""

    def renew_certificate(
        self, serial: str | int, *, csr: str | None = None, validity_days: int | None = None
    ) -> Certificate: ...

    def ca_bundle(self) -> str: ...


Connect = Callable[[Identity], AbstractContextManager[Renewer]]


class Outcome(Enum):
    """What one pass did."""

    NOT_DUE = "not-due"
    RENEWED = "renewed"


@dataclass(frozen=True)
class AgentConfig:
    """Which files to keep fresh, when, and how to retry."""

    identity: Identity
    policy: RenewalPolicy = field(default_factory=RenewalPolicy)
    backoff: Backoff = field(default_factory=Backoff)
    check_interval: float = 60.0
    reuse_key: bool = False
    validity_days: int | None = None
    # seconds between fetches of the CA bundle when nothing is renewed; None: with renewals only
    bundle_interval: float | None = 600.0


class RenewalAgent:
    """Keeps one identity's certificate fresh; thread-safe (one pass at a time)."""

    def __init__(
        self,
        config: AgentConfig,
        connect: Connect,
        *,
        on_renew: Hook | None = None,
        on_bundle: Callable[[], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.connect = connect
        self.on_renew = on_renew
        self.on_bundle = on_bundle  # the CA bundle changed without a renewal
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._rand = random.SystemRandom()
        self._bundle_due: dt.datetime | None = None  # None: fetch on the first pass
        # the policy in force: the configured one, with the server's margin once read
        # (rotation_policy.renew_before_expiry_days) where no `renew_before` was given
        self.policy = config.policy
        self._ask_server = (
            config.policy.renew_before is None and config.policy.server_margin is None
        )

    def current(self) -> x509.Certificate:
        """The live leaf certificate.

        Raises:
            FileNotFoundError: not enrolled yet.
        """
        return self.config.identity.certificate()

    def check(self) -> Outcome:
        """Renew if due.

        Raises:
            PkiError, OSError, ValueError: the renewal failed; the files are unchanged.
        """
        with self._lock:
            cert = self.current()
            if not self.policy.is_due(cert, self.clock.now()):
                # the server's margin only ever moves renewal later (RenewalPolicy), so it is
                # read on a pass that renews nothing, and the answer stays not due
                self._read_server_policy()
                self._refresh_bundle()
                return Outcome.NOT_DUE
            self._renew(cert)
            return Outcome.RENEWED

    def renew_now(self) -> Certificate:
        """Renew whether due or not.

        Raises:
            PkiError, OSError, ValueError: the renewal failed; the files are unchanged.
        """
        with self._lock:
            return self._renew(self.current())

    def _renew(self, cert: x509.Certificate) -> Certificate:
        identity = self.config.identity
        old = identity.read()
        old_key = load_key(old.key_pem)
        key = old_key if self.config.reuse_key else generate_key(key_type_of(old_key))
        csr = csr_for_renewal(cert, key).decode()
        log.info("renewing %x (valid until %s)", cert.serial_number, cert.not_valid_after_utc)
        with self.connect(identity) as client:
            result = client.renew_certificate(
                cert.serial_number, csr=csr, validity_days=self.config.validity_days
            )
            bundle = self._fetch_bundle(client)
        if not same_key(result.certificate, key):
            raise IntegrityError("the renewed certificate does not carry the key we sent")
        new_key_pem = old.key_pem if self.config.reuse_key else key_pem(key)
        # the bundle first: it may hold the new certificate's issuer, new after a rotation
        if bundle is not None:
            self._install_bundle(bundle)
        install_pair(identity.cert, identity.key, Pair(result.fullchain_pem(), new_key_pem))
        log.info("renewed: now %s, valid until %s", result.serial, result.not_after)
        if self.on_renew is not None:
            self.on_renew(result)  # reloading the pair reloads the bundle with it
        return result

    def _read_server_policy(self) -> None:
        """Take the server's renewal margin as the default, once it answers (a failure is
        logged and asked again on the next pass; meanwhile the fraction applies)."""
        if not self._ask_server:
            return
        try:
            with self.connect(self.config.identity) as client:
                reader = getattr(client, "renewal_policy", None)  # a Renewer without it: none
                answer = reader() if reader is not None else None
        except FAILURES as exc:
            log.warning("the server's renewal policy could not be read now: %s", exc)
            return
        self._ask_server = False
        if answer is not None:
            self.policy = replace(self.policy, server_margin=answer.renew_before)
            log.info("renewing %s before expiry (the server's policy)", answer.renew_before)

    def _fetch_bundle(self, client: Renewer) -> bytes | None:
        """The server's CA bundle, or None (logged) if it cannot be had now."""
        try:
            return client.ca_bundle().encode()
        except FAILURES as exc:
            log.warning("cannot fetch the CA bundle: %s; trying again later", exc)
            return None

    def _install_bundle(self, bundle: bytes) -> bool:
        """Install a fetched bundle if it passes the checks and differs; True if it did."""
        try:
            changed = install_bundle(self.config.identity.ca, bundle)
        except (PkiError, OSError) as exc:
            log.warning("CA bundle not installed: %s", exc)
            return False
        interval = self.config.bundle_interval
        if interval is not None:
            self._bundle_due = self.clock.now() + dt.timedelta(seconds=interval)
        if changed:
            log.info("CA bundle %s updated from the server", self.config.identity.ca)
        return changed

    def _refresh_bundle(self) -> None:
        """On a pass with nothing to renew: fetch the bundle if it is time, announce a change.

        Failures are logged and tried again on the next pass: the certificate is fine.
        """
        interval = self.config.bundle_interval
        now = self.clock.now()
        if interval is None or (self._bundle_due is not None and now < self._bundle_due):
            return
        try:
            with self.connect(self.config.identity) as client:
                bundle = self._fetch_bundle(client)
        except FAILURES as exc:
            log.warning("cannot fetch the CA bundle: %s; trying again later", exc)
            return
        if bundle is not None and self._install_bundle(bundle) and self.on_bundle is not None:
            self.on_bundle()

    def retry_delay(self, exc: BaseException, attempt: int) -> float:
        """Seconds to wait after failure number `attempt`; the server's Retry-After wins."""
        delay = self.config.backoff.delay(attempt, self._rand.random())
        if isinstance(exc, RateLimited):
            return max(float(exc.retry_after), delay)
        return delay

    def run(self, stop: threading.Event) -> None:
        """Check and renew until `stop` is set; failures are logged and retried with backoff."""
        failures = 0
        while not stop.is_set():
            try:
                self.check()
                delay = self.policy.wait(
                    self.current(), self.clock.now(), self.config.check_interval
                )
                failures = 0
            except FAILURES as exc:
                delay = self.retry_delay(exc, failures)
                failures += 1
                log.warning(
                    "renewal attempt %d failed: %s; retrying in %.1fs", failures, exc, delay
                )
            stop.wait(max(delay, 0.05))

    def run_once(self, attempts: int, stop: threading.Event | None = None) -> Outcome:
        """One renewal if due, retrying transient failures up to `attempts` times (cron mode).

        Raises:
            PkiError, OSError, ValueError: the last failure, once retries are used up or the
                failure is not transient.
        """
        stop = stop or threading.Event()
        for attempt in range(attempts):
            try:
                return self.check()
            except FAILURES as exc:
                if attempt == attempts - 1 or not retryable(exc):
                    raise
                delay = self.retry_delay(exc, attempt)
                log.warning(
                    "renewal attempt %d failed: %s; retrying in %.1fs", attempt + 1, exc, delay
                )
                if stop.wait(delay):
                    raise
        raise AssertionError("attempts must be at least 1")
