"""The composition root: everything pkiforge runs is built here, from one `Settings`.

The CLI's local commands take the core (`build_pki`); the API takes the core and the parts
around it (`build_app_state`, `build_app`); `pkiforge serve` gives the processes that serve a
`ServingApp`, which carries the settings (never a secret) and builds the app where it runs.
Nothing else opens a store, a Redis client or a metrics registry.

The API's modules are imported inside the functions that need them: the CLI's local commands
start without FastAPI.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from pkiforge import passphrase as secrets_
from pkiforge.ca.ca_revocation import CARevocationService
from pkiforge.ca.config import CAConfig, OCSPConfig, URLTemplates
from pkiforge.ca.context import CAContext
from pkiforge.ca.events import EMAIL_ENDPOINT, EventType, Subscription, service_of
from pkiforge.ca.hierarchy import HierarchyService
from pkiforge.ca.notifications import DeliveryFailed, NotificationService, Notifier, RetryPolicy
from pkiforge.ca.ocsp import OCSPResponder
from pkiforge.ca.operator_certs import OperatorCertificates
from pkiforge.ca.profiles import Profile
from pkiforge.ca.revocation import RevocationService
from pkiforge.ca.service_webhooks import check_url
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import InvalidInput, NotFound, PkiError, StoreUnavailable
from pkiforge.notify.email import EmailSender, SmtpServer
from pkiforge.notify.routing import RoutingSender
from pkiforge.notify.webhooks import Endpoint, WebhookSender, secret_key
from pkiforge.pki import Pki
from pkiforge.settings import Settings
from pkiforge.signers.file import FileKeyStore, PassphraseSource
from pkiforge.signers.sealed_only import SealedOnlyKeys
from pkiforge.store.db import SqlStore, Synchronous, make_engine
from pkiforge.store.durable import WalSync
from pkiforge.store.writer_lock import sqlite_path
from pkiforge.x509.keys import parse_key_type
from pkiforge.x509.names import SubjectName, validate_trust_domain

if TYPE_CHECKING:
    from cryptography import x509
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry
    from redis import Redis

    from pkiforge.acme.service import AcmeService
    from pkiforge.api.keyauth import KeyAuth
    from pkiforge.api.readiness import Readiness
    from pkiforge.api.service_api import ServiceApi
    from pkiforge.api.state import AppState
    from pkiforge.auth.mtls import ClientCertificateVerifier
    from pkiforge.ca.ports import RateLimiter
    from pkiforge.scheduler.core import Scheduler
    from pkiforge.scheduler.jobs import Intervals
    from pkiforge.store.redis_health import RedisProbe

log = logging.getLogger(__name__)

__all__ = [
    "Pki",
    "ServingApp",
    "build_app",
    "build_app_state",
    "build_pki",
    "build_scheduler",
    "ca_config",
    "check_serving",
    "email_sender",
    "nonce_backend",
    "notification_sender",
    "open_engine",
    "open_store",
    "webhook_sender",
]


def build_pki(
    settings: Settings,
    passphrase: bytes | PassphraseSource,
    clock: Clock | None = None,
    store: SqlStore | None = None,
    *,
    ca_keys: bool = True,
) -> Pki:
    """Open the store (migrating it on first use) and wire the services; without `ca_keys`
    no CA key is ever loaded (`publish serve`: what the database holds is served).

    Raises:
        StoreUnavailable, InvalidInput.
    """
    config = ca_config(settings)
    store = store or open_store(settings)
    files = FileKeyStore(settings.home, passphrase, settings.ca.kdf_log2_n)
    keys: FileKeyStore | SealedOnlyKeys = files if ca_keys else SealedOnlyKeys(files)
    clock = clock or SystemClock()
    subscriptions = subscriptions_of(settings)
    ctx = CAContext(
        store=store,
        keys=keys,
        config=config,
        clock=clock,
        # always: a service may set its own webhook at any time (`ca/service_webhooks.py`)
        notifier=Notifier(clock, subscriptions),
    )
    ocsp = OCSPResponder(ctx)
    revocation = RevocationService(ctx, ocsp=ocsp)
    return Pki(
        settings,
        store,
        ctx,
        HierarchyService(ctx),
        OperatorCertificates(ctx),
        revocation,
        CARevocationService(ctx, revocation),
        NotificationService(store, clock, retry_policy(settings)),
        ocsp,
    )


def build_scheduler(settings: Settings, pki: Pki) -> Scheduler:
    """The scheduler and its jobs (scheduler/jobs.py) over `pki`, configured by the
    `scheduler` and `rotation_policy` settings."""
    from pkiforge.ca.ca_expiry import CAExpiryCheck
    from pkiforge.ca.expiry_notices import ExpiryNotices
    from pkiforge.ca.expiry_scan import ExpiryPolicy, ExpiryScan
    from pkiforge.ca.tidy import Tidy
    from pkiforge.scheduler.core import Job, LeasePolicy, Scheduler
    from pkiforge.scheduler.jobs import NOTIFY, standard_jobs
    from pkiforge.store.scheduler_repos import SqlLeaseStore

    cfg, policy = settings.scheduler, settings.rotation_policy
    expiry = ExpiryScan(
        pki.ctx,
        ExpiryPolicy(
            dt.timedelta(days=policy.renew_before_expiry_days), tuple(policy.notification_days)
        ),
        observers=[ExpiryNotices(pki.ctx)],
    )
    jobs = standard_jobs(
        pki.ctx,
        pki.revocation,
        expiry,
        CAExpiryCheck(pki.ctx, policy.ca_warning_days),
        Tidy(pki.ctx, pki.revocation, cfg.archive_after),
        job_intervals(settings),
        pki.ocsp,
    )
    # always: services' own webhooks come and go with the registry, not the configuration
    every = dt.timedelta(seconds=settings.notifications.poll_seconds)
    jobs.append(Job(NOTIFY, every, _notify_job(pki)))
    lease = LeasePolicy(cfg.lease.total_seconds(), cfg.lease_renew.total_seconds())
    return Scheduler(
        jobs,
        SqlLeaseStore(pki.store),
        pki.ctx.clock,
        policy=lease,
        on_failure=partial(_job_failed, pki),
    )


def _notify_job(pki: Pki) -> Callable[[Any], dict[str, Any]]:
    """The notify job's run: its sender (webhook secrets, email password) is built when the
    job first runs, not with the scheduler, so that `scheduler status` and the other jobs
    never need those secrets; a secret that cannot be read fails this job alone, naming the
    webhook (`serve` checks them before it serves: `check_serving`)."""
    built: list[RoutingSender] = []

    def run(_: Any) -> dict[str, Any]:
        if not built:
            built.append(notification_sender(pki))
        return pki.notifications.deliver_due(built[0]).summary()

    return run


def job_intervals(settings: Settings) -> Intervals:
    """How often each standard job runs, from the settings."""
    from pkiforge.scheduler.jobs import Intervals

    cfg, policy = settings.scheduler, settings.rotation_policy
    scan = dt.timedelta(hours=policy.check_interval_hours)
    return Intervals(
        crl_refresh=cfg.crl_interval,
        ocsp_refresh=cfg.ocsp_interval,
        expiry_scan=scan,
        ca_expiry=scan,
        tidy=cfg.tidy_interval,
    )


def _interval_seconds(settings: Settings) -> dict[str, float]:
    """Every job's interval in seconds, by name, as the metrics show them."""
    from pkiforge.scheduler.jobs import (
        CA_EXPIRY,
        CRL_REFRESH,
        EXPIRY_SCAN,
        NOTIFY,
        OCSP_REFRESH,
        TIDY,
    )

    every = job_intervals(settings)
    seconds = {
        CRL_REFRESH: every.crl_refresh.total_seconds(),
        OCSP_REFRESH: every.ocsp_refresh.total_seconds(),
        EXPIRY_SCAN: every.expiry_scan.total_seconds(),
        CA_EXPIRY: every.ca_expiry.total_seconds(),
        TIDY: every.tidy.total_seconds(),
    }
    if settings.notifications.webhooks:
        seconds[NOTIFY] = float(settings.notifications.poll_seconds)
    return seconds


def _job_failed(pki: Pki, job: str, error: str) -> None:
    """A `scheduler.failed` event for the subscribers that want it (best effort: the store
    that made the job fail may refuse this too; the log and the metrics have it either way)."""
    try:
        with pki.store.transaction() as tx:
            pki.ctx.notify(
                tx,
                EventType.SCHEDULER_FAILED,
                data={
                    "job": job,
                    "error": error,
                    "action": f"see `pkiforge scheduler status` and the server log for {job}",
                },
            )
    except PkiError as exc:
        log.warning("scheduler.failed event for %s not recorded: %s", job, exc)


def subscriptions_of(settings: Settings) -> tuple[Subscription, ...]:
    """The configured webhooks and email as the core's subscriptions (the event types they
    want: for email, those with a recipient)."""
    hooks = tuple(
        Subscription(
            hook.name,
            frozenset(EventType(e) for e in hook.events) if hook.events is not None else None,
        )
        for hook in settings.notifications.webhooks
    )
    email = settings.notifications.email
    if email is None:
        return hooks
    wanted = frozenset(t for t in EventType if email.recipients(t.value))
    return (*hooks, Subscription(EMAIL_ENDPOINT, wanted))


def retry_policy(settings: Settings) -> RetryPolicy:
    """How failed deliveries are retried, and how long a delivery being sent is held."""
    timeout = settings.notifications.timeout_seconds
    return RetryPolicy(
        max_retries=settings.rotation_policy.max_retries,
        retry_delay=dt.timedelta(hours=settings.rotation_policy.retry_delay_hours),
        hold=dt.timedelta(seconds=2 * timeout + 5),
    )


def notification_sender(pki: Pki) -> RoutingSender:
    """The sender of every delivery: the configured webhooks (`webhook_sender`) and services'
    own webhooks, read from the registry when sent and checked again then (fail closed: a
    URL that the settings no longer allow, or a malformed secret, fails the attempt)."""
    hooks = pki.service_webhooks

    def resolve(endpoint: str) -> Endpoint | None:
        service_id = service_of(endpoint)
        if service_id is None:
            return None
        hook = hooks.find(service_id)
        if hook is None:
            raise DeliveryFailed(f"service {service_id!r} has no webhook any more")
        try:
            check_url(hook.url, allow_loopback_http=hooks.allow_loopback_http)
            key = secret_key(hook.secret, name=endpoint)
        except InvalidInput as exc:
            raise DeliveryFailed(f"refused: {exc}") from None
        return Endpoint(endpoint, hook.url, key)

    email = email_sender(pki.settings)
    return RoutingSender(webhook_sender(pki.settings, resolve=resolve), email)


def email_sender(settings: Settings) -> EmailSender | None:
    """The sender of `notifications.email` (None when off), its password read now.

    Raises:
        InvalidInput: the password file or the CA file cannot be read (naming the setting,
        never the password).
    """
    cfg = settings.notifications.email
    if cfg is None:
        return None
    password = None
    if cfg.password_file is not None:
        try:
            password = (settings.home / cfg.password_file).read_text().strip()
        except OSError as exc:
            raise InvalidInput(
                f"notifications.email: cannot read its password_file ({exc.strerror})"
            ) from None
    try:
        context = ssl.create_default_context(
            cafile=str(settings.home / cfg.ca_file) if cfg.ca_file is not None else None
        )
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise InvalidInput(f"notifications.email: cannot load its ca_file ({why})") from None
    server = SmtpServer(
        cfg.host,
        cfg.port,
        cfg.starttls,
        context,
        cfg.username,
        password,
        settings.notifications.timeout_seconds,
    )
    return EmailSender(server, cfg.sender, cfg.recipients)


def webhook_sender(
    settings: Settings, *, resolve: Callable[[str], Endpoint | None] | None = None
) -> WebhookSender:
    """The sender of the configured webhooks, their secrets read now.

    Raises:
        InvalidInput: a secret file cannot be read or a secret is malformed (naming the
        webhook, never the secret).
    """
    endpoints = {}
    for hook in settings.notifications.webhooks:
        if hook.secret_file is not None:
            path = settings.home / hook.secret_file  # an absolute path stays as it is
            try:
                secret = path.read_text()
            except OSError as exc:
                raise InvalidInput(
                    f"webhook {hook.name!r}: cannot read its secret_file ({exc.strerror})"
                ) from None
        else:
            assert hook.secret is not None  # settings require one of the two
            secret = hook.secret.get_secret_value()
        endpoints[hook.name] = Endpoint(hook.name, hook.url, secret_key(secret, name=hook.name))
    return WebhookSender(endpoints, timeout=settings.notifications.timeout_seconds, resolve=resolve)


def check_serving(settings: Settings) -> None:
    """What a serving worker reads from the configuration beyond the CA, checked before the
    server says it serves: the webhooks' secrets (when its scheduler sends them) and the
    nonce store's choice.

    Raises:
        InvalidInput: a webhook's secret cannot be read or is malformed; the nonce store
        asked for cannot be used with these settings.
    """
    if settings.scheduler.enabled and settings.notifications.webhooks:
        webhook_sender(settings)
    try:
        nonce_backend(settings)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="auth.nonce_store") from None


def ca_config(settings: Settings) -> CAConfig:
    """The plain values the core needs, taken from validated settings.

    Raises:
        InvalidInput / InvalidName: a value in the configuration is not acceptable.
    """
    ca = settings.ca
    return CAConfig(
        trust_domain=validate_trust_domain(ca.trust_domain),
        organization=ca.organization,
        root_key_type=parse_key_type(ca.root_key_type),
        intermediate_key_type=parse_key_type(ca.intermediate_key_type),
        root_validity=ca.root_validity,
        intermediate_validity=ca.intermediate_validity,
        default_issuer=ca.default_issuer,
        backdate=ca.backdate,
        crl_next_update=settings.crl.next_update,
        root_crl_next_update=settings.crl.root_next_update,
        crl_rebuild_delay=settings.crl.rebuild_delay,
        crl_rebuild_within=settings.crl.rebuild_within,
        crl_delta=settings.crl.delta,
        crl_delta_next_update=settings.crl.delta_next_update,
        urls=url_templates(settings),
        ocsp=OCSPConfig(
            responder_validity=settings.ocsp.responder_validity,
            responder_key_type=parse_key_type(settings.ocsp.responder_key_type),
            responder_renew_at=settings.ocsp.responder_renew_at,
            response_validity=settings.ocsp.response_validity,
            fresh_nonce=settings.ocsp.nonce == "fresh",
            unknown_unauthorized=settings.ocsp.unknown == "unauthorized",
            refresh_batch=settings.ocsp.refresh_batch,
        ),
        profiles={
            name: Profile(
                name, tuple(p.ekus), p.default_validity, p.max_validity, p.allow_wildcards
            )
            for name, p in settings.profiles.items()
        },
    )


def url_templates(settings: Settings) -> URLTemplates:
    """The URLs written into certificates: each `urls:` setting, or when unset and
    `publish.base_url` is set, the plain-HTTP publishing listener's (`publish serve`)."""
    urls, base = settings.urls, settings.publish.base_url

    def pick(explicit: str | None, path: str) -> str | None:
        if explicit is not None:
            return explicit
        return f"{base.rstrip('/')}{path}" if base else None

    delta = pick(urls.delta_crl, "/api/v1/crl/{issuer}/delta")
    return URLTemplates(
        pick(urls.crl, "/api/v1/crl/{issuer}"),
        pick(urls.ocsp, "/api/v1/ocsp"),
        pick(urls.ca_issuers, "/api/v1/ca/{issuer}?format=der"),
        delta if settings.crl.delta else None,
    )


def open_store(settings: Settings, *, wal_autocheckpoint: int | None = None) -> SqlStore:
    """The store, as durable as `sqlite_synchronous` asks (the one place that decides how).

    `full` on a SQLite file: the connections commit without syncing and each write transaction
    waits for a shared sync of the WAL before it returns (store/durable.py), which keeps the
    sync out of the writer lock; CLI and server alike. `normal`: nothing waits for the disk.
    PostgreSQL commits are as durable as its own `synchronous_commit` makes them.

    Raises:
        StoreUnavailable, InvalidInput: see `SqlStore.open`.
    """
    wal = _group_synced_database(settings)
    return SqlStore.open(
        settings.effective_database_url,
        wal_autocheckpoint=wal_autocheckpoint,
        synchronous=_connection_synchronous(settings),
        durable=WalSync(wal) if wal is not None else None,
    )


def open_engine(settings: Settings) -> Engine:
    """A bare engine for migrations: its commits bypass `SqlStore`, so with `full` SQLite
    syncs each one itself.

    Raises:
        InvalidInput: see `make_engine`.
    """
    full: Synchronous = "full" if settings.sqlite_synchronous == "full" else "normal"
    return make_engine(settings.effective_database_url, synchronous=full)


def _group_synced_database(settings: Settings) -> str | None:
    """The SQLite file whose WAL the store syncs after commits, if `full` is asked for."""
    url = settings.effective_database_url
    if settings.sqlite_synchronous != "full" or not url.startswith("sqlite"):
        return None
    return sqlite_path(make_url(url))


def _connection_synchronous(settings: Settings) -> Synchronous:
    # with a WAL to sync after commits, the connections need not sync inside them; an
    # in-memory database has none, and SQLite's own setting stays as asked
    if _group_synced_database(settings) is not None:
        return "normal"
    return "full" if settings.sqlite_synchronous == "full" else "normal"


def nonce_backend(settings: Settings) -> str:
    """Which nonce store the settings select: memory, database or redis.

    `auto` picks redis when a Redis URL is set (several replicas), database with several
    workers (`server.workers`, which `pkiforge serve --workers` sets) on one database, memory
    for one process.

    Raises:
        ValueError: `redis` asked for without a Redis URL.
    """
    auth = settings.auth
    url = _auth_redis_url(settings)
    if auth.nonce_store == "redis" and not url:
        raise ValueError("auth.nonce_store is redis but no auth.redis_url (or redis_url) is set")
    if auth.nonce_store != "auto":
        return auth.nonce_store
    if url:
        return "redis"
    return "database" if settings.server.workers > 1 else "memory"


def build_app_state(settings: Settings, pki: Pki) -> AppState:
    """Everything the API's routers share, over the core `pki`.

    Raises:
        ValueError: malformed whitelist or inconsistent settings.
        StoreUnavailable: a Redis URL cannot be used.
    """
    from prometheus_client import CollectorRegistry

    from pkiforge.api.state import AppState
    from pkiforge.ca.authorization import Whitelist
    from pkiforge.whitelist import load_whitelist

    registry = CollectorRegistry()
    if pki.store.durable is not None:
        from pkiforge.api.metrics import durable_wait

        pki.store.durable.on_wait = durable_wait(registry).observe
    from pkiforge.api.scheduler_metrics import SchedulerCollector
    from pkiforge.store.scheduler_repos import SqlLeaseStore

    registry.register(
        SchedulerCollector(SqlLeaseStore(pki.store).states, _interval_seconds(settings))
    )
    _health_metrics(settings, pki, registry)
    redis = _RedisClients()
    proxies = tuple(ipaddress.ip_network(p, strict=False) for p in settings.server.trusted_proxies)
    state = AppState(
        settings,
        pki,
        identities=_identities(pki),
        api=_service_api(pki, registry, _rate_limiter(settings, redis)),
        signing=_key_auth(settings, pki, registry, redis),
        registry=registry,
        readiness=_readiness(settings, pki, registry),
        trusted_proxies=proxies,
        whitelist=load_whitelist(settings.home) or Whitelist(),
        # SQLite's work is local and short: on the event loop; PostgreSQL's waits on the
        # network: in the thread pool, where they overlap
        core_inline=pki.store.engine.dialect.name == "sqlite",
    )
    if settings.acme.enabled:
        state.acme = build_acme(settings, pki, state)
    return state


def build_acme(settings: Settings, pki: Pki, state: AppState) -> AcmeService:
    """The ACME use-cases over `pki`, issuing and revoking through the API's own pipeline:
    an account acts as the service its external account binding named."""
    import ipaddress as ip
    from concurrent.futures import ThreadPoolExecutor

    from cryptography import x509 as cx509

    from pkiforge.acme.addresses import AddressGuard, networks
    from pkiforge.acme.service import AcmeService, Lifetimes
    from pkiforge.api.acme.fetch import Http01Fetcher
    from pkiforge.api.acme.metrics import AcmeMetrics
    from pkiforge.ca.authorization import Caller
    from pkiforge.ca.issue_request import IssueRequest
    from pkiforge.store.acme_repos import SqlAcmeRepository

    acme = settings.acme
    certificates = state.api.certificates

    def caller(service_id: str) -> Caller:
        return Caller(service_id, state.whitelist.policy_for(service_id))

    def issue(service_id: str, issuer: str, csr: cx509.CertificateSigningRequest) -> int:
        request = IssueRequest(service_id=service_id, profile=acme.profile, issuer=issuer, csr=csr)
        return certificates.request(request, caller(service_id)).record.serial

    def check_names(service_id: str, names: Sequence[SubjectName]) -> None:
        certificates.check_names(caller(service_id), names)

    def revoke(service_id: str, serial: int, reason: int) -> None:
        certificates.revoke(serial, caller(service_id), _REASONS[reason])

    def certificate_of(serial: int) -> cx509.Certificate | None:
        try:
            return pki.certificates.get(serial).certificate
        except NotFound:
            return None

    own: list[tuple[ip.IPv4Address | ip.IPv6Address, int]] = []
    try:
        own.append((ip.ip_address(settings.server.host), settings.server.port))
    except ValueError:  # a host name: its addresses are the loopback ones when it is local
        own += [(ip.ip_address("127.0.0.1"), settings.server.port)]
    guard = AddressGuard(networks(acme.allowed_networks), acme.allow_loopback, tuple(own))
    pool = ThreadPoolExecutor(acme.validation_workers, thread_name_prefix="acme-validation")
    return AcmeService(
        SqlAcmeRepository(pki.store, audit=pki.ctx.audit),
        pki.ctx.clock,
        issue,
        check_names,
        revoke,
        Http01Fetcher(guard, acme.http01_port, acme.validation_timeout_seconds, acme.resolve),
        lambda job: _submit(pool, job),
        # a validation is one fetch: three timeouts and more have passed, it was lost
        Lifetimes(
            acme.nonce_lifetime,
            acme.order_lifetime,
            dt.timedelta(seconds=3 * acme.validation_timeout_seconds + 30),
        ),
        certificate_of,
        AcmeMetrics(state.registry),
    )


def build_app(
    settings: Settings,
    pki: Pki,
    tasks: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> FastAPI:
    """The HTTPS API over `pki`; `tasks` run in its event loop while it serves.

    Raises:
        ValueError, StoreUnavailable: see `build_app_state`.
    """
    from pkiforge.api.app import create_app

    return create_app(build_app_state(settings, pki), tasks=(*tasks, partial(_check_keys, pki)))


async def _check_keys(pki: Pki) -> None:
    """Load each CA key kept here once, as the app starts (in a thread: a key's KDF takes a
    while), so that one that cannot be used shows in the metrics and the log before anything
    needs it."""
    import asyncio

    try:
        await asyncio.to_thread(pki.ctx.check_keys)
    except PkiError as exc:  # the store is down: the first signature will tell
        log.warning("CA keys not checked at start: %s", exc)


@dataclass(frozen=True)
class ServingApp:
    """What a serving process calls to build its app: picklable, so that `pkiforge serve`
    can hand it to worker processes. It carries no secret: the passphrase is read where
    the app is built, from the file named here or the sources `pkiforge.passphrase` reads.
    """

    settings: Settings
    passphrase_file: Path | None = None
    # the serving command checkpoints the SQLite WAL itself (store/checkpoint.py): the
    # processes' own automatic checkpoint is then only a fallback
    checkpointed: bool = False
    tasks: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()

    def __call__(self) -> FastAPI:
        from pkiforge.store import checkpoint

        settings = self.settings
        store = open_store(
            settings, wal_autocheckpoint=checkpoint.FALLBACK_PAGES if self.checkpointed else None
        )
        home, file = settings.home, self.passphrase_file
        pki = build_pki(settings, lambda: secrets_.resolve(home, file, prompt=False), store=store)
        tasks = tuple(self.tasks)
        if settings.scheduler.enabled:
            tick = settings.scheduler.tick.total_seconds()
            tasks += (partial(build_scheduler(settings, pki).run_forever, tick),)
        return build_app(settings, pki, tasks)


class _RedisClients:
    """One client per Redis URL, shared by everything that uses that server."""

    def __init__(self) -> None:
        self._clients: dict[str, Redis] = {}

    def get(self, url: str, setting: str) -> Redis:
        """Raises StoreUnavailable: the URL cannot be used (named by its `setting`)."""
        if url not in self._clients:
            import redis

            try:
                self._clients[url] = redis.Redis.from_url(
                    url, socket_timeout=2, socket_connect_timeout=2
                )
            except ValueError:
                raise StoreUnavailable(f"{setting} cannot be parsed") from None
        return self._clients[url]


def _auth_redis_url(settings: Settings) -> str | None:
    """`auth.redis_url`, else the top-level `redis_url`."""
    return settings.auth.redis_url or settings.redis_url


def _rate_limiter(settings: Settings, redis: _RedisClients) -> RateLimiter:
    """Issuance limits: Redis-backed when `redis_url` is set, else per process."""
    from pkiforge.store.ratelimit import InMemoryRateLimiter, RedisRateLimiter

    limits = settings.rate_limits
    window = limits.issuance_window.total_seconds()
    if not settings.redis_url:
        return InMemoryRateLimiter(limits.issuance_limit, window)
    client = redis.get(settings.redis_url, "redis_url")
    return RedisRateLimiter(client, limits.issuance_limit, window, limits.key_prefix)


def _readiness(settings: Settings, pki: Pki, registry: CollectorRegistry) -> Readiness:
    """Readiness checks, the free-space reserve (SQLite) and their gauges."""
    from pkiforge.api.metrics import ReadinessCollector, StorageCollector
    from pkiforge.api.readiness import Readiness
    from pkiforge.store.health import WriteProbe
    from pkiforge.store.space import DiskReserve

    storage = settings.storage
    reserve = DiskReserve.for_url(settings.effective_database_url, storage.min_free_bytes)
    probe = WriteProbe(pki.store, storage.write_probe_seconds, now=pki.ctx.clock.now)
    readiness = Readiness(pki, probe, reserve, _redis_probe(settings))
    registry.register(ReadinessCollector(readiness.checks))
    if reserve is not None:
        registry.register(StorageCollector(reserve.free, reserve.reserve))
    return readiness


def _redis_probe(settings: Settings) -> RedisProbe | None:
    """A probe of each Redis the settings name (once per URL), or None without one.

    Raises:
        StoreUnavailable: a URL cannot be parsed (named by its setting).
    """
    from pkiforge.store.redis_health import RedisProbe

    urls: dict[str, str] = {}
    for setting, url in (
        ("auth.redis_url", _auth_redis_url(settings)),
        ("redis_url", settings.redis_url),
    ):
        if url and url not in urls.values():
            urls[setting] = url
    if not urls:
        return None
    try:
        return RedisProbe.for_urls(urls)
    except ValueError:
        raise StoreUnavailable(f"{', '.join(urls)} cannot be parsed") from None


def _health_metrics(settings: Settings, pki: Pki, registry: CollectorRegistry) -> None:
    """The CA hierarchy's gauges (notAfter, key availability, CRL nextUpdate) and the
    outbox's."""
    from pkiforge.api.ca_metrics import CACollector
    from pkiforge.api.notification_metrics import NotificationCollector

    health = pki.ctx.key_health
    registry.register(CACollector(pki.ctx, settings.rotation_policy.ca_warning_days, health.state))
    registry.register(NotificationCollector(pki.notifications.stats))


def _identities(pki: Pki) -> ClientCertificateVerifier:
    """Who a client certificate names, checked against the active CAs and the store."""
    from pkiforge.auth.mtls import ClientCertificateVerifier
    from pkiforge.ca.models import CertStatus

    def issuers() -> list[x509.Certificate]:
        return [
            ca.certificate
            for ca in pki.hierarchy.all()
            if ca.certificate is not None and ca.in_service  # retired: rotated, still valid
        ]

    def standing(serial: int) -> tuple[CertStatus, str | None] | None:
        with pki.store.transaction(readonly=True) as tx:
            return tx.certificates.standing(serial)

    return ClientCertificateVerifier(issuers, pki.ctx.config.trust_domain, standing, pki.ctx.clock)


def _service_api(pki: Pki, registry: CollectorRegistry, limiter: RateLimiter) -> ServiceApi:
    from pkiforge.api.metrics import ExpiryCollector, LifecycleMetrics, request_latency
    from pkiforge.api.service_api import LastSeen, ServiceApi
    from pkiforge.ca.caller_certs import CallerCertificates
    from pkiforge.ca.enrollment import EnrollmentService
    from pkiforge.ca.issuance import Issuance
    from pkiforge.ca.models import CertificateQuery, CertStatus
    from pkiforge.ca.registry import RegistryService

    services = RegistryService(pki.ctx)
    enrollment = EnrollmentService(pki.ctx)
    issuance = Issuance(pki.ctx, enrollment, limiter, LifecycleMetrics(registry))
    certificates = CallerCertificates(pki.certificates, pki.revocation, services, issuance)

    def expiring(window: dt.timedelta) -> int:
        now = pki.ctx.clock.now()
        return pki.certificates.count(
            CertificateQuery(
                status=CertStatus.ACTIVE,
                expiring_before=now + window,
                now=now,
                exclude_internal=True,
            )
        )

    registry.register(ExpiryCollector(expiring))
    return ServiceApi(
        services, enrollment, certificates, LastSeen(services), request_latency(registry)
    )


def _key_auth(
    settings: Settings, pki: Pki, registry: CollectorRegistry, redis: _RedisClients
) -> KeyAuth:
    """Request signing: key registry, verifier, nonces, brute-force protection, bookkeeping.

    Raises:
        ValueError: inconsistent settings. StoreUnavailable: unusable Redis URL.
    """
    from pkiforge.api.keyauth import KeyAuth, KeyCountCollector
    from pkiforge.auth.keys import CachedKeyResolver
    from pkiforge.auth.metrics import AuthMetrics
    from pkiforge.auth.nonces import InMemoryNonceStore, NonceStore
    from pkiforge.auth.ratelimit import (
        FailurePolicy,
        FailureTracker,
        InMemoryFailureTracker,
        RedisFailureTracker,
    )
    from pkiforge.auth.redis_nonces import RedisNonceStore
    from pkiforge.auth.registry import KeyRegistry
    from pkiforge.auth.usage import UsageRecorder
    from pkiforge.auth.verify import RequestVerifier, VerifierPolicy
    from pkiforge.store.key_repos import SqlKeyRepository, SqlUsageSink
    from pkiforge.store.nonces import SqlNonceStore

    auth, clock, store = settings.auth, pki.ctx.clock, pki.store
    repo = SqlKeyRepository(store, audit=pki.ctx.audit)
    resolver = CachedKeyResolver(repo, clock=clock, ttl_seconds=auth.key_cache_seconds)
    backend = nonce_backend(settings)
    url = _auth_redis_url(settings)
    client = redis.get(url, "auth.redis_url") if url else None
    nonces: NonceStore
    if backend == "redis":
        assert client is not None  # nonce_backend picks redis only with a URL
        redis_nonces = RedisNonceStore(client, prefix=auth.key_prefix + "nonce:", clock=clock)
        redis_nonces.open()  # begins the memory, warns unless maxmemory-policy is noeviction
        nonces = redis_nonces
    elif backend == "database":
        sql_nonces = SqlNonceStore(store, clock=clock)
        sql_nonces.open()
        nonces = sql_nonces
    else:
        nonces = InMemoryNonceStore(clock=clock)
    policy = FailurePolicy(auth.max_failures, auth.failure_window_seconds, auth.block_seconds)
    failures: FailureTracker
    if client is not None:
        failures = RedisFailureTracker(client, policy, prefix=auth.key_prefix + "fail:")
    else:
        failures = InMemoryFailureTracker(policy, clock=clock)
    verifier = RequestVerifier(
        keys=resolver,
        nonces=nonces,
        clock=clock,
        policy=VerifierPolicy(
            max_age_seconds=auth.window_seconds,
            clock_skew_seconds=auth.clock_skew_seconds,
            accept_legacy=auth.accept_legacy,
        ),
    )
    registry.register(KeyCountCollector(repo))
    return KeyAuth(
        registry=KeyRegistry(repo, clock, on_revoke=resolver.invalidate),
        verifier=verifier,
        resolver=resolver,
        failures=failures,
        metrics=AuthMetrics(registry),
        recorder=UsageRecorder(SqlUsageSink(store)),
        clock=clock,
        backend=backend,
        trusted_origin=auth.trusted_origin,
    )


def _submit(pool: Any, job: Callable[[], None]) -> None:
    pool.submit(job)  # the job records its own outcome (AcmeService.validate never raises)


def _reason_flags() -> dict[int, Any]:
    from cryptography import x509 as cx509

    # RFC 5280 §5.3.1 codes a subscriber may give over ACME (acme/service.py REASONS)
    return {
        0: cx509.ReasonFlags.unspecified,
        1: cx509.ReasonFlags.key_compromise,
        3: cx509.ReasonFlags.affiliation_changed,
        4: cx509.ReasonFlags.superseded,
        5: cx509.ReasonFlags.cessation_of_operation,
        9: cx509.ReasonFlags.privilege_withdrawn,
    }


_REASONS = _reason_flags()
