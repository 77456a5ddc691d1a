"""One Settings object, nested by concern: `<home>/config.yaml`, then `PKIFORGE_*` env overrides.

Secrets never live here: the CA passphrase comes from `PKIFORGE_CA_PASSPHRASE`, a passphrase
file or a prompt, and is read by the edges only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pkiforge.durations import parse_duration

CONFIG_FILE = "config.yaml"
DATABASE_FILE = "pkiforge.db"  # the default SQLite database, in the data directory
MIN_PORT, MAX_PORT = 1, 65535  # a TCP port to listen on (0, "any free port", is refused)
Port = Annotated[int, Field(ge=MIN_PORT, le=MAX_PORT)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _duration(value: Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int | float):
        return dt.timedelta(seconds=value)
    return parse_duration(str(value))


class ProfileSettings(_Section):
    """A certificate profile: which EKUs, how long by default and at most."""

    ekus: list[str]
    default_validity: dt.timedelta
    max_validity: dt.timedelta
    allow_wildcards: bool = False

    _v = field_validator("default_validity", "max_validity", mode="before")(_duration)


def _default_profiles() -> dict[str, ProfileSettings]:
    day = dt.timedelta(days=1)
    return {
        "server": ProfileSettings(
            ekus=["serverAuth"],
            default_validity=90 * day,
            max_validity=397 * day,
            allow_wildcards=True,
        ),
        "client": ProfileSettings(
            ekus=["clientAuth"], default_validity=90 * day, max_validity=365 * day
        ),
        "service": ProfileSettings(
            ekus=["serverAuth", "clientAuth"],
            default_validity=365 * day,
            max_validity=365 * day,
        ),
    }


class CASettings(_Section):
    """Names and defaults for the CA hierarchy."""

    trust_domain: str = "pkiforge.internal"
    organization: str = "pkiforge"
    root_key_type: str = "rsa4096"
    intermediate_key_type: str = "rsa2048"
    root_validity: dt.timedelta = dt.timedelta(days=3650)
    intermediate_validity: dt.timedelta = dt.timedelta(days=1825)
    default_issuer: str = "services"
    backdate: dt.timedelta = dt.timedelta(minutes=1)
    # scrypt cost for CA key encryption (2**15 = 32 MiB, ~0.1 s); see signers/file.py
    kdf_log2_n: int = Field(default=15, ge=14, le=20)

    _v = field_validator("root_validity", "intermediate_validity", "backdate", mode="before")(
        _duration
    )


class URLSettings(_Section):
    """Where relying parties find CRLs, OCSP and issuer certificates; `{issuer}` is replaced."""

    crl: str | None = None
    # the delta CRL (RFC 5280 §5.2.6 freshestCRL), written into certificates while
    # `crl.delta` is on
    delta_crl: str | None = None
    ocsp: str | None = None
    ca_issuers: str | None = None


class CRLSettings(_Section):
    """CRL freshness."""

    next_update: dt.timedelta = dt.timedelta(hours=24)
    # the root's CRL: its key is usually offline, and each CRL is signed at a ceremony, so it
    # lasts long enough to plan one (alerts at 30 and 7 days before its nextUpdate)
    root_next_update: dt.timedelta = Field(
        default=dt.timedelta(days=180), le=dt.timedelta(days=366)
    )
    # a CRL missing revocations is signed again once none has come for `rebuild_delay`, and
    # at the latest `rebuild_within` after the first: a burst of revocations shares a few
    # signatures, and each revocation is served by every replica within seconds
    rebuild_delay: dt.timedelta = Field(
        default=dt.timedelta(seconds=1), le=dt.timedelta(minutes=10)
    )
    rebuild_within: dt.timedelta = Field(
        default=dt.timedelta(seconds=3), le=dt.timedelta(minutes=10)
    )
    # delta CRLs (RFC 5280 §5.2.4): revocations since the newest full CRL, under its number
    delta: bool = False
    delta_next_update: dt.timedelta = dt.timedelta(hours=1)

    _v = field_validator(
        "next_update",
        "root_next_update",
        "rebuild_delay",
        "rebuild_within",
        "delta_next_update",
        mode="before",
    )(_duration)

    @model_validator(mode="after")
    def _delay_within(self) -> CRLSettings:
        if self.rebuild_delay > self.rebuild_within:
            raise ValueError("crl.rebuild_delay must not be longer than crl.rebuild_within")
        return self


class ProxyProtocolSettings(_Section):
    """PROXY protocol v2 from load balancers that pass TLS through (server/proxy.py)."""

    # the balancers' addresses: a connection from one of them must start with a PROXY v2
    # header (else it is closed); from any other address none is ever read
    trusted: list[str] = Field(default_factory=list)
    # a trusted peer's header must be complete this long after the connection is accepted
    header_timeout_seconds: float = Field(default=5.0, gt=0)

    @field_validator("trusted")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"server.proxy_protocol.trusted: {network!r} is not an IP address or "
                    "network (e.g. 10.0.0.5/32)"
                ) from None
        return value


class PublishSettings(_Section):
    """`pkiforge publish serve`: CRLs, CA certificates and OCSP over plain HTTP."""

    host: str = "127.0.0.1"
    port: Port = 8080
    # the URL relying parties reach the listener at (http://pki.example.internal): when set,
    # each unset `urls:` entry points at it, so certificates carry its CRL, OCSP and CA URLs
    base_url: str | None = None
    # threads that run the synchronous core (database reads, OCSP signing)
    threads: int = Field(default=16, ge=1, le=256)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("publish.base_url must start with http:// (or https://)")
        return value


class OCSPSettings(_Section):
    """The OCSP responder: delegated responder certificates and cached answers."""

    # each CA's delegated responder certificate (id-kp-OCSPSigning, id-pkix-ocsp-nocheck):
    # its lifetime, its key, and the fraction of that lifetime after which a successor is made
    responder_validity: dt.timedelta = Field(
        default=dt.timedelta(days=7), ge=dt.timedelta(hours=1), le=dt.timedelta(days=90)
    )
    responder_key_type: str = "p256"
    responder_renew_at: float = Field(default=2 / 3, gt=0, lt=1)
    # nextUpdate - thisUpdate of each answer; cached answers are signed again half-way
    response_validity: dt.timedelta = Field(
        default=dt.timedelta(hours=1), ge=dt.timedelta(minutes=1), le=dt.timedelta(days=7)
    )
    # a request with a nonce: "cached" answers it from the cache without nonce (RFC 8954
    # allows it; large CAs do), "fresh" signs a new answer echoing the nonce
    nonce: Literal["cached", "fresh"] = "cached"
    # a serial the issuer never issued: "unknown" (signed by the responder) or the unsigned
    # "unauthorized" (RFC 5019 §2.2.3)
    unknown: Literal["unknown", "unauthorized"] = "unknown"
    # HTTP Cache-Control max-age is the time to nextUpdate, at most this
    max_age: dt.timedelta = Field(default=dt.timedelta(hours=1), ge=dt.timedelta(0))
    # how many cached answers the scheduler's ocsp-refresh job signs again per run
    refresh_batch: int = Field(default=10_000, ge=1)

    _v = field_validator("responder_validity", "response_validity", "max_age", mode="before")(
        _duration
    )

    @model_validator(mode="after")
    def _responder_outlives_answers(self) -> OCSPSettings:
        if self.response_validity > self.responder_validity * (1 - self.responder_renew_at):
            raise ValueError(
                "ocsp.response_validity must fit in the responder's remaining life after "
                "renewal: responder_validity * (1 - responder_renew_at)"
            )
        return self


class ServerSettings(_Section):
    """The HTTPS API."""

    host: str = "127.0.0.1"
    port: Port = 8443
    workers: int = 1
    # per worker process: the threads that run the synchronous core (endpoints, dependencies);
    # unset means anyio's default thread pool
    threads: int | None = Field(default=None, le=256)
    hostnames: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1"])
    # a reverse proxy at these addresses may forward the client certificate (URL-encoded PEM)
    trusted_proxies: list[str] = Field(default_factory=list)
    client_cert_header: str = "x-forwarded-client-cert"
    # from those proxies, the client's address: the last one in this header
    client_address_header: str = "x-forwarded-for"
    proxy_protocol: ProxyProtocolSettings = Field(default_factory=ProxyProtocolSettings)
    max_body_bytes: int = 1024 * 1024
    # the HTTP layer's bounds (server/limits.py; docs/operations.md, "Limits and timeouts")
    max_request_line_bytes: int = Field(default=8 * 1024, ge=64)
    max_header_bytes: int = Field(default=8 * 1024, ge=64)
    max_head_bytes: int = Field(default=64 * 1024, ge=256)
    max_headers: int = Field(default=100, ge=1)
    idle_timeout_seconds: int = Field(default=5, ge=1)  # also uvicorn's keep-alive timeout
    head_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)  # per worker
    max_connections_per_client: int = Field(default=100, ge=1)  # per worker and address
    # the server's own TLS certificate: profile, key type, renew at this fraction of lifetime
    tls_profile: str = "server"
    tls_key_type: str = "p256"
    tls_renew_at: float = Field(default=2 / 3, gt=0, lt=1)

    @field_validator("threads")
    @classmethod
    def _threads_at_least_one(cls, value: int | None) -> int | None:
        # every request runs in a thread of this pool: 0 would leave none to run it
        if value is not None and value < 1:
            raise ValueError(
                "server.threads must be at least 1 (threads per worker that run requests); "
                "0 (inline) is no longer supported: leave it unset for the default"
            )
        return value


class RateLimitSettings(_Section):
    """Certificate issuance (request + renew) per service; shared through Redis if configured."""

    issuance_limit: int = Field(default=100, ge=1)
    issuance_window: dt.timedelta = dt.timedelta(hours=1)
    # every Redis key starts with this, so installations (and test runs) never see each other
    key_prefix: str = "pkiforge:"

    _v = field_validator("issuance_window", mode="before")(_duration)


# the event types of ca/events.py (settings stays free of the core: a test keeps them equal)
EventName = Literal[
    "certificate.expiring",
    "certificate.renewed",
    "certificate.revoked",
    "ca.rotated",
    "ca.expiring",
    "scheduler.failed",
]


class WebhookSettings(_Section):
    """One webhook subscriber: where events go, how they are signed, which ones it wants."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    url: str = Field(pattern=r"^https?://")
    # the Standard Webhooks secret (`whsec_` + base64), in the file or the file it names;
    # `pkiforge notifications secret` makes one
    secret: SecretStr | None = None
    secret_file: Path | None = None
    events: list[EventName] | None = None  # None: every type

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSettings:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError(
                f"webhook {self.name!r}: give exactly one of `secret` and `secret_file`"
            )
        return self


# one mailbox, no display name: nothing that could carry a header line break
_ADDRESS = r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$"
Address = Annotated[str, Field(pattern=_ADDRESS, max_length=254)]


class EmailSettings(_Section):
    """Notifications by email over SMTP; STARTTLS is required unless turned off."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(default=587, ge=1, le=65535)
    # upgrade the connection before anything is sent, and refuse a server that cannot
    starttls: bool = True
    ca_file: Path | None = None  # trust for the server's certificate (default: the system's)
    username: str | None = None
    password_file: Path | None = None  # relative to the home; never the password itself
    sender: Address = Field(alias="from")
    to: list[Address] = Field(default_factory=list)  # every event type
    to_by_event: dict[EventName, list[Address]] = Field(default_factory=dict)  # and these

    @model_validator(mode="after")
    def _usable(self) -> EmailSettings:
        if not self.to and not any(self.to_by_event.values()):
            raise ValueError("notifications.email: give recipients in `to` or `to_by_event`")
        if (self.username is None) != (self.password_file is None):
            raise ValueError("notifications.email: `username` and `password_file` go together")
        if self.username is not None and not self.starttls:
            raise ValueError(
                "notifications.email: a password is never sent without STARTTLS "
                "(`starttls: false` with `username`)"
            )
        return self

    def recipients(self, event_type: str) -> list[str]:
        """Who gets an event of this type: `to`, then `to_by_event`'s, each once."""
        return list(dict.fromkeys([*self.to, *self.to_by_event.get(event_type, [])]))  # type: ignore[call-overload]


class NotificationSettings(_Section):
    """Webhook subscribers of every event, and email (docs/operations.md, Notifications)."""

    webhooks: list[WebhookSettings] = Field(default_factory=list)
    email: EmailSettings | None = None
    # services' own webhooks (set through the API or `pkiforge service webhook`) must be
    # https; this lets them be plain http to a loopback address (tests, a local receiver)
    allow_loopback_http: bool = False
    # how often `pkiforge serve` looks for due deliveries, and how long one may take
    poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: list[WebhookSettings]) -> list[WebhookSettings]:
        names = [w.name for w in value]
        if len(names) != len(set(names)):
            raise ValueError("notifications.webhooks: every webhook needs a name of its own")
        return value


class AuthSettings(_Section):
    """Request-signing authentication (RFC 9421) of the API: window, nonces, brute force."""

    window_seconds: int = Field(default=300, ge=1, le=3600)  # how old `created` may be
    clock_skew_seconds: int = Field(default=30, ge=0, le=600)
    # auto: redis if a Redis URL is set, else database with several workers, else memory
    nonce_store: Literal["auto", "memory", "database", "redis"] = "auto"
    redis_url: str | None = None  # default: the top-level redis_url
    key_prefix: str = "pkiforge:auth:"
    key_cache_seconds: float = Field(default=5.0, ge=0, le=60)  # revocations seen within this
    accept_legacy: bool = True  # the origin documents' `Authorization: PKI` scheme
    # the origin clients sign (https://pki.example.com) when a proxy rewrites scheme or Host
    trusted_origin: str | None = None
    # brute force: this many failures from one address within the window block it
    max_failures: int = Field(default=10, ge=1)
    failure_window_seconds: int = Field(default=60, ge=1)
    block_seconds: int = Field(default=300, ge=1)


class RotationPolicySettings(_Section):
    """When certificates count as due, as the origin documents write it (`rotation_policy`).

    The server holds no service's key, so it renews nothing itself: the expiry scan runs every
    `check_interval_hours`, finds certificates within `notification_days` of expiry, and counts
    one not renewed within `renew_before_expiry_days` as overdue. `max_retries` and
    `retry_delay_hours` govern notification delivery.
    """

    check_interval_hours: float = Field(default=6, gt=0, le=24 * 7)
    renew_before_expiry_days: int = Field(default=30, ge=1, le=3650)
    notification_days: list[int] = Field(default_factory=lambda: [30, 7, 1])
    max_retries: int = Field(default=3, ge=0, le=100)
    retry_delay_hours: float = Field(default=1, gt=0, le=24 * 7)
    # an active intermediate or root this close to its notAfter is warned about (the
    # `ca-expiry` job: log, `ca.expiring` events, `pkiforge_ca_days_left`)
    ca_warning_days: int = Field(default=365, ge=1, le=3650)

    @field_validator("notification_days")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        if any(day < 1 or day > 3650 for day in value):
            raise ValueError("rotation_policy.notification_days must be days from 1 to 3650")
        return sorted(set(value), reverse=True)


class SchedulerSettings(_Section):
    """The jobs pkiforge runs by itself (docs/operations.md, Scheduler)."""

    # run the jobs inside `pkiforge serve` (every worker and replica may: the lease lets one
    # run each job at a time); off, `pkiforge scheduler run` from cron or a timer does it
    enabled: bool = True
    tick: dt.timedelta = Field(
        default=dt.timedelta(seconds=15),
        ge=dt.timedelta(seconds=1),
        le=dt.timedelta(hours=1),
    )
    # a job's lease lasts `lease` without renewal; its holder renews it every `lease_renew`
    lease: dt.timedelta = Field(default=dt.timedelta(seconds=30), ge=dt.timedelta(seconds=1))
    lease_renew: dt.timedelta = Field(default=dt.timedelta(seconds=10), gt=dt.timedelta(0))
    # how often the CRL job looks for CRLs due for replacement (crl.next_update decides when)
    crl_interval: dt.timedelta = Field(default=dt.timedelta(minutes=1), ge=dt.timedelta(seconds=1))
    # how often the OCSP job renews responder certificates and signs due answers again
    ocsp_interval: dt.timedelta = Field(default=dt.timedelta(minutes=5), ge=dt.timedelta(seconds=1))
    tidy_interval: dt.timedelta = Field(default=dt.timedelta(days=1), ge=dt.timedelta(minutes=1))
    # an expired certificate is archived (left out of the inventory's queries) this long
    # after its notAfter
    archive_after: dt.timedelta = Field(default=dt.timedelta(days=90), ge=dt.timedelta(0))

    _v = field_validator(
        "tick",
        "lease",
        "lease_renew",
        "crl_interval",
        "ocsp_interval",
        "tidy_interval",
        "archive_after",
        mode="before",
    )(_duration)

    @model_validator(mode="after")
    def _renew_within_lease(self) -> SchedulerSettings:
        if self.lease_renew >= self.lease:
            raise ValueError("scheduler.lease_renew must be shorter than scheduler.lease")
        return self


class StorageSettings(_Section):
    """The disk under the database, and how readiness proves that the database takes writes."""

    # SQLite: below this many free bytes on the database's filesystem the API refuses new
    # write work (503 storage-full) and /readyz says not ready; 0 turns the reserve off
    min_free_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # /readyz writes a heartbeat row at most once per this many seconds per process and keeps
    # its outcome meanwhile; a write that failed fails readiness for as long
    write_probe_seconds: float = Field(default=5.0, gt=0, le=300)


class AcmeSettings(_Section):
    """The ACME server (docs/acme.md): off unless enabled."""

    enabled: bool = False
    # the profile ACME certificates are issued under (the service's whitelist may restrict it)
    profile: str = "server"
    max_jws_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    nonce_lifetime: dt.timedelta = Field(default=dt.timedelta(hours=1), ge=dt.timedelta(seconds=10))
    order_lifetime: dt.timedelta = Field(default=dt.timedelta(days=1), ge=dt.timedelta(minutes=1))
    # http-01 validation: one attempt per challenge, in a pool of this many threads
    validation_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    validation_workers: int = Field(default=4, ge=1, le=64)
    http01_port: Port = 80
    # where validation may connect (the private ranges by default); link-local, metadata and
    # this server's own addresses are refused whatever this says
    allowed_networks: list[str] = Field(
        default_factory=lambda: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
    )
    # tests only: validate names on loopback addresses
    allow_loopback: bool = False
    # tests only: name -> "address:port" that http-01 validation connects to instead of
    # resolving the name (as pebble's overrides do)
    resolve: dict[str, str] = Field(default_factory=dict)

    _v = field_validator("nonce_lifetime", "order_lifetime", mode="before")(_duration)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad one
        return value

    @field_validator("resolve")
    @classmethod
    def _resolve(cls, value: dict[str, str]) -> dict[str, str]:
        import ipaddress

        for name, target in value.items():
            address, sep, port = target.rpartition(":")
            if not sep or not port.isdigit() or not MIN_PORT <= int(port) <= MAX_PORT:
                raise ValueError(f"acme.resolve[{name}]: expected address:port")
            ipaddress.ip_address(address.strip("[]"))
        return value


class Settings(BaseSettings):
    """All configuration; build with `load_settings(home)`."""

    model_config = SettingsConfigDict(
        env_prefix="PKIFORGE_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Path("./pkiforge-data")
    database_url: str | None = None
    # SQLite only: "full" syncs every commit to disk (survives a power loss), "normal" syncs
    # at checkpoints (survives a crash of the process); see the README's Storage section
    sqlite_synchronous: Literal["normal", "full"] = "full"
    ca: CASettings = Field(default_factory=CASettings)
    urls: URLSettings = Field(default_factory=URLSettings)
    crl: CRLSettings = Field(default_factory=CRLSettings)
    ocsp: OCSPSettings = Field(default_factory=OCSPSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    profiles: dict[str, ProfileSettings] = Field(default_factory=_default_profiles)
    # redis://host:6379/0: rate limits shared by every replica (default: per process)
    redis_url: str | None = None
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rotation_policy: RotationPolicySettings = Field(default_factory=RotationPolicySettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    acme: AcmeSettings = Field(default_factory=AcmeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # explicit arguments > environment > config.yaml (passed in as init values)
        return (init_settings, env_settings)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / DATABASE_FILE).resolve()}"

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain data for `config show`, under the names the file takes (`from`,
        not `sender`), so the output pastes back; the DB URL password is masked."""
        data = self.model_dump(mode="json", by_alias=True)
        data["home"] = str(self.home)
        url = self.database_url
        if url and "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
            scheme, rest = url.split("//", 1)
            creds, host = rest.split("@", 1)
            data["database_url"] = f"{scheme}//{creds.split(':', 1)[0]}:***@{host}"
        return data


def load_settings(home: Path, **overrides: Any) -> Settings:
    """Read `<home>/config.yaml` (if any), then the environment, then explicit `overrides`
    (command-line options; a section is a nested dict): each later source wins.

    Raises:
        ValueError: the file is not valid YAML or has unknown/invalid keys.
    """
    data: dict[str, Any] = {}
    path = home / CONFIG_FILE
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        # the top level ignores unknown env vars, so the file's own keys are checked here
        unknown = sorted(str(k) for k in loaded if k not in Settings.model_fields)
        if unknown:
            raise ValueError(
                f"{path}: unknown setting {unknown[0]!r}: use one of "
                f"{', '.join(k for k in Settings.model_fields if k != 'home')}"
            )
        data.update(loaded)
    data["home"] = home
    explicit = {k: v for k, v in overrides.items() if v is not None}
    return _merge_env(data, explicit, path)


def _merge_env(file_values: dict[str, Any], explicit: dict[str, Any], path: Path) -> Settings:
    """defaults < config file < environment < explicit overrides (command-line options)."""
    try:
        env_only = Settings.model_validate({})  # defaults + environment
    except ValidationError as exc:
        raise ValueError(_report("the environment", exc, None)) from None
    # exclude_unset, not exclude_defaults: an env value equal to the default still wins
    env_set = env_only.model_dump(exclude_unset=True)
    merged = _deep_merge(_deep_merge(file_values, env_set), explicit)
    merged["home"] = file_values["home"]  # the caller's --home always wins
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        source = str(path) if path.exists() else ""
        raise ValueError(_report(source, exc, env_set, explicit)) from None


def _report(
    source: str,
    exc: ValidationError,
    env_set: dict[str, Any] | None,
    explicit: dict[str, Any] | None = None,
) -> str:
    """One line per problem, named by its dotted key (`ca.root_validity: ...`) and, for a value
    from the command line or the environment, where it came from (`env_set` None: all of them
    came from the environment); a lone problem is one line after the file's path. Values are
    never shown: one may be a secret."""
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc:  # a check across the whole settings: its message names the settings
            lines.append(message)
            continue
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        env = "PKIFORGE_" + "__".join(loc).upper()
        if env_set is None:
            lines.append(f"{env}: {message}")
        elif explicit is not None and _is_set(explicit, loc):
            lines.append(f"{'.'.join(loc)}: {message} (from the command line)")
        elif _is_set(env_set, loc):
            lines.append(f"{'.'.join(loc)}: {message} (from {env})")
        else:
            lines.append(f"{'.'.join(loc)}: {message}")
    prefix = f"{source}: " if source and env_set is not None else ""
    if len(lines) == 1:
        return prefix + lines[0]
    title = f"invalid configuration in {source}:" if source else "invalid configuration:"
    return "\n  ".join([title, *lines])


def _is_set(values: dict[str, Any], loc: tuple[str, ...]) -> bool:
    node: Any = values
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
