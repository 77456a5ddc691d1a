"""Table definitions (rows only, no logic); migrations/ creates them, repos.py maps them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


TS = DateTime(timezone=True)


class CARow(Base):
    __tablename__ = "cas"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    parent: Mapped[str | None] = mapped_column(String(63))
    cert_pem: Mapped[str | None] = mapped_column(Text)
    key_ref: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    crl_number: Mapped[int] = mapped_column(Integer, default=0)
    # the first revocation the newest CRL does not list, NULL when it lists them all, and
    # the newest revocation: set with each revocation, the first cleared with each CRL
    # (migration 0008)
    crl_stale_since: Mapped[dt.datetime | None] = mapped_column(TS)
    last_revoked_at: Mapped[dt.datetime | None] = mapped_column(TS)


class ServiceRow(Base):
    __tablename__ = "services"

    service_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    service_name: Mapped[str] = mapped_column(String(255))
    service_type: Mapped[str | None] = mapped_column(String(64), index=True)
    endpoints: Mapped[list[str]] = mapped_column(JSON, default=list)
    names: Mapped[list[str]] = mapped_column(JSON, default=list)
    health_check_url: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    updated_at: Mapped[dt.datetime] = mapped_column(TS)
    last_seen: Mapped[dt.datetime | None] = mapped_column(TS)


class ServiceNameRow(Base):
    """The registry's names by index key (ca/name_index.py), kept with `services.names` in
    the same transaction: a certificate request reads the few rows under its names' keys
    instead of every service's names (migration 0006)."""

    __tablename__ = "service_names"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    service_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("services.service_id"), primary_key=True
    )
    pattern: Mapped[str] = mapped_column(Text)


# the rows the expiry index holds: signed certificates (migration 0005)
_SIGNED = text("not_after IS NOT NULL")
# the rows the status index holds: revoked, pending and failed ones (migration 0016)
_NOT_ACTIVE = text("status <> 'active'")


class CertificateRow(Base):
    __tablename__ = "certificates"

    serial_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    # issuer and status have a handful of values each: not indexed alone (migration 0004),
    # only in the inventory's orders (migration 0016), below
    issuer: Mapped[str] = mapped_column(ForeignKey("cas.name"))
    profile: Mapped[str] = mapped_column(String(64))
    common_name: Mapped[str] = mapped_column(String(255))
    names: Mapped[list[str]] = mapped_column(JSON, default=list)
    # indexed with status and expiry (migration 0007), below
    service_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(TS, index=True)
    not_before: Mapped[dt.datetime | None] = mapped_column(TS)
    # indexed only once set (migration 0005): a reserved row has none until it is signed
    not_after: Mapped[dt.datetime | None] = mapped_column(TS)
    fingerprint_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    pem: Mapped[str | None] = mapped_column(Text)
    server_generated_key: Mapped[bool] = mapped_column(Boolean, default=False)
    renewed_from: Mapped[str | None] = mapped_column(String(40))
    # the requester's JSON object, SQL NULL when empty; `metadata` is taken on declarative
    # classes, hence the attribute name (the column, and Core statements, use `metadata`)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", JSON(none_as_null=True), nullable=True
    )
    # set by the scheduler's tidy job once the certificate has been expired for the retention:
    # the inventory's queries leave it out; it stays readable by serial (migration 0009)
    archived_at: Mapped[dt.datetime | None] = mapped_column(TS)

    __table_args__ = (
        Index(
            "ix_certificates_not_after",
            "not_after",
            sqlite_where=_SIGNED,
            postgresql_where=_SIGNED,
        ),
        # a service's certificates by standing: its active ones are one range of the index,
        # however many it has had (the quota count, discovery, listing by service)
        Index("ix_certificates_service_standing", "service_id", "status", "not_after"),
        # whether a certificate was renewed: the expiry scan's question (migration 0009)
        Index("ix_certificates_renewed_from", "renewed_from"),
        # the inventory's pages by one filter, newest first: each page is one range of its
        # index whatever the skew (store/inventory.py; migration 0016)
        Index("ix_certificates_issuer_created", "issuer", "created_at", "serial_number"),
        Index("ix_certificates_service_created", "service_id", "created_at", "serial_number"),
        # only the few certificates not active: a query by expiry (status 'active') cannot
        # take it for a better index than the expiry's; repos.py repeats its condition
        Index(
            "ix_certificates_status_created",
            "status",
            "created_at",
            "serial_number",
            sqlite_where=_NOT_ACTIVE,
            postgresql_where=_NOT_ACTIVE,
        ),
    )


class RevocationRow(Base):
    __tablename__ = "revocations"

    serial_number: Mapped[str] = mapped_column(
        ForeignKey("certificates.serial_number"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[dt.datetime] = mapped_column(TS)
    invalidity_date: Mapped[dt.datetime | None] = mapped_column(TS)
    revoked_by: Mapped[str] = mapped_column(String(255), default="")


class CRLRow(Base):
    __tablename__ = "crls"
    __table_args__ = (UniqueConstraint("issuer", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(ForeignKey("cas.name"))
    number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[dt.datetime] = mapped_column(TS)
    next_update: Mapped[dt.datetime] = mapped_column(TS)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class DeltaCRLRow(Base):
    """Delta CRLs (RFC 5280 §5.2.4); their numbers come from the same sequence as `crls`."""

    __tablename__ = "delta_crls"
    __table_args__ = (UniqueConstraint("issuer", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(ForeignKey("cas.name"))
    number: Mapped[int] = mapped_column(Integer)
    base_number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[dt.datetime] = mapped_column(TS)
    next_update: Mapped[dt.datetime] = mapped_column(TS)
    # the issuer's newest revocation when it was signed: a later one makes it stale
    last_revoked_at: Mapped[dt.datetime | None] = mapped_column(TS)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class OCSPResponderRow(Base):
    """Delegated OCSP responder certificates; the key sealed by the key store (migration 0017)."""

    __tablename__ = "ocsp_responders"
    __table_args__ = (Index("ix_ocsp_responders_issuer", "issuer", "not_after"),)

    serial_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    issuer: Mapped[str] = mapped_column(ForeignKey("cas.name"))
    not_after: Mapped[dt.datetime] = mapped_column(TS)
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    cert_der: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)


class OCSPAnswerRow(Base):
    """Signed OCSP answers without nonce, one per CertID (migration 0017)."""

    __tablename__ = "ocsp_answers"
    __table_args__ = (Index("ix_ocsp_answers_next_update", "next_update"),)

    serial_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(63), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    this_update: Mapped[dt.datetime] = mapped_column(TS)
    next_update: Mapped[dt.datetime] = mapped_column(TS)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(TS)
    actor: Mapped[str] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class EnrollmentTokenRow(Base):
    """One-time tokens for a service's first certificate; only a hash of the secret is kept."""

    __tablename__ = "enrollment_tokens"

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    service_id: Mapped[str] = mapped_column(String(128), index=True)
    profile: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    expires_at: Mapped[dt.datetime] = mapped_column(TS)
    created_by: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[dt.datetime | None] = mapped_column(TS)
    used_by: Mapped[str | None] = mapped_column(String(64))
    certificate_serial: Mapped[str | None] = mapped_column(String(40))


class SigningKeyRow(Base):
    """Public keys registered for request signing (issue 5)."""

    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    algorithm: Mapped[str] = mapped_column(String(32))
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    client_name: Mapped[str] = mapped_column(String(255), index=True)
    email: Mapped[str | None] = mapped_column(String(255))
    organization: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TS)
    revocation_reason: Mapped[str | None] = mapped_column(String(255))
    last_used: Mapped[dt.datetime | None] = mapped_column(TS)


class KeyUsageRow(Base):
    """Per-day authentication counts of a signing key."""

    __tablename__ = "key_usage_daily"

    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class AuthEventRow(Base):
    """One authentication attempt: which key, from where, what, and how it ended."""

    __tablename__ = "auth_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(TS, index=True)
    key_id: Mapped[str | None] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(255))


class NonceRow(Base):
    """Seen request-signing nonces, for the database nonce store (several workers, one DB)."""

    __tablename__ = "nonces"

    nonce_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(TS, index=True)


class SchedulerJobRow(Base):
    """One scheduler job: its lease (who runs it, until when) and its last run (migration
    0009). The lease is taken with one conditional UPDATE (store/scheduler_repos.py)."""

    __tablename__ = "scheduler_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(TS)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(TS)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(TS)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration: Mapped[float | None] = mapped_column(Float)
    runs: Mapped[int] = mapped_column(Integer, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class EventRow(Base):
    """Events recorded for subscribers (`ca/events.py`), with their deliveries: the outbox."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime] = mapped_column(TS)
    service_id: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeliveryRow(Base):
    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.event_id"), index=True)
    # a global webhook's name, `service:` + a service id, or `email:smtp` (migration 0017)
    endpoint: Mapped[str] = mapped_column(String(160))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(TS)
    held_until: Mapped[dt.datetime | None] = mapped_column(TS)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(TS)


class ServiceWebhookRow(Base):
    """A service's own webhook and its Standard Webhooks secret (migration 0017)."""

    __tablename__ = "service_webhooks"

    service_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("services.service_id"), primary_key=True
    )
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    updated_at: Mapped[dt.datetime] = mapped_column(TS)


class HeartbeatRow(Base):
    """One row that readiness updates to prove the database takes writes (store/health.py)."""

    __tablename__ = "heartbeat"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    beat_at: Mapped[dt.datetime] = mapped_column(TS)
    beats: Mapped[int] = mapped_column(Integer, default=0)


class AcmeExternalKeyRow(Base):
    """ACME external account binding keys (migration 0014): each binds one account to a
    service. The MAC key is kept as is: verifying a binding needs it (RFC 8555 §7.3.4)."""

    __tablename__ = "acme_external_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(128), index=True)
    mac_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    account_id: Mapped[str | None] = mapped_column(String(64))


class AcmeAccountRow(Base):
    __tablename__ = "acme_accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    service_id: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16))
    contact: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    eab_kid: Mapped[str | None] = mapped_column(String(64))


class AcmeOrderRow(Base):
    __tablename__ = "acme_orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    identifiers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    authz_ids: Mapped[list[str]] = mapped_column(JSON)
    expires_at: Mapped[dt.datetime] = mapped_column(TS)
    issuer: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(TS)
    certificate_serial: Mapped[str | None] = mapped_column(String(40), index=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AcmeAuthorizationRow(Base):
    __tablename__ = "acme_authorizations"

    authz_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    identifier_type: Mapped[str] = mapped_column(String(16))
    identifier_value: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[dt.datetime] = mapped_column(TS)


class AcmeChallengeRow(Base):
    __tablename__ = "acme_challenges"

    challenge_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    authz_id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    validated_at: Mapped[dt.datetime | None] = mapped_column(TS)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # when the running validation started (migration 0017): one older than the service's
    # `stale_after` was lost with its process and is started again
    started_at: Mapped[dt.datetime | None] = mapped_column(TS)


class AcmeNonceRow(Base):
    """ACME replay nonces (RFC 8555 §6.5), shared by every replica; a nonce is deleted when
    used."""

    __tablename__ = "acme_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(TS, index=True)
