"""Service registry use-cases: register, update, look up, discover, and `last_seen`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from pkiforge.ca.authorization import Caller, Operation, expand, name_matches, require
from pkiforge.ca.context import CAContext
from pkiforge.ca.models import CertificateQuery, CertificateRecord, CertStatus
from pkiforge.ca.name_index import keys_for, pattern_key
from pkiforge.ca.registry_models import ServiceChanges, ServiceRecord
from pkiforge.errors import Conflict, InvalidName, NotFound, PermissionDenied
from pkiforge.x509.names import SubjectName, parse_san, validate_service_id, validate_uri

T = TypeVar("T")


def normalise_names(names: Sequence[str]) -> tuple[str, ...]:
    """Registered names as `DNS:x` / `IP:x` / `URI:x`; wildcards allowed as patterns.

    Raises:
        InvalidName, PolicyViolation: a malformed name (the field is `names`).
    """
    out: list[str] = []
    for text in names:
        name = str(parse_san(text, allow_wildcard=True, field="names"))
        if name not in out:
            out.append(name)
    return tuple(out)


def check_endpoints(endpoints: Sequence[str]) -> tuple[str, ...]:
    """Endpoints are absolute URIs.

    Raises:
        InvalidName: naming the bad endpoint.
    """
    return tuple(validate_uri(e, field="endpoints") for e in endpoints)


class RegistryService:
    """The services table, with the whitelist's say over who may claim what."""

    def __init__(self, ctx: CAContext) -> None:
        self.ctx = ctx

    def register(self, caller: Caller, service: ServiceRecord) -> ServiceRecord:
        """Register a service (itself, or any as admin).

        Raises:
            PermissionDenied: not allowed, or a name the whitelist does not grant.
            Conflict: the id is taken or a name belongs to another service.
            InvalidName: malformed id, name or endpoint.
        """
        validate_service_id(service.service_id)
        policy = require(caller, Operation.REGISTER, service.service_id)
        now = self.ctx.clock.now()
        record = replace(
            service,
            names=normalise_names(service.names),
            endpoints=check_endpoints(service.endpoints),
            created_at=now,
            updated_at=now,
            last_seen=now if caller.service_id == service.service_id else None,
            status="active",
        )
        with self.ctx.store.transaction() as tx:
            owners = tx.services.owners_of(_keys(record.names), claiming=True)
            self._check_claims(caller, record, owners, policy.allowed_names)
            tx.services.add(record)
            self.ctx.audit(
                tx,
                caller.actor,
                "service.register",
                record.service_id,
                {"names": list(record.names), "endpoints": list(record.endpoints)},
            )
        return record

    def update(self, caller: Caller, service_id: str, changes: ServiceChanges) -> ServiceRecord:
        """Change some fields of a service.

        Raises:
            NotFound, PermissionDenied, Conflict, InvalidName.
        """
        policy = require(caller, Operation.UPDATE, service_id)
        with self.ctx.store.transaction() as tx:
            old = tx.services.get(service_id)
            if old is None:
                raise NotFound(f"no service {service_id!r} is registered", field="service_id")
            new = replace(
                old,
                service_name=_pick(changes.service_name, old.service_name),
                service_type=_pick(changes.service_type, old.service_type),
                endpoints=check_endpoints(changes.endpoints)
                if changes.endpoints is not None
                else old.endpoints,
                names=normalise_names(changes.names) if changes.names is not None else old.names,
                health_check_url=_pick(changes.health_check_url, old.health_check_url),
                owner=_pick(changes.owner, old.owner),
                auto_renew=_pick(changes.auto_renew, old.auto_renew),
                updated_at=self.ctx.clock.now(),
            )
            if new.names != old.names:
                owners = tx.services.owners_of(_keys(new.names), claiming=True)
                self._check_claims(caller, new, owners, policy.allowed_names)
            tx.services.update(new)
            changed = sorted(k for k, v in vars(changes).items() if v is not None)
            self.ctx.audit(tx, caller.actor, "service.update", service_id, {"changed": changed})
        return new

    def get(self, service_id: str) -> ServiceRecord:
        """Raises NotFound."""
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.services.get(service_id)
        if record is None:
            raise NotFound(f"no service {service_id!r} is registered", field="service_id")
        return record

    def list(self, service_type: str | None = None) -> list[ServiceRecord]:
        with self.ctx.store.transaction(readonly=True) as tx:
            return tx.services.list(service_type)

    def names_of(self, service_id: str) -> tuple[str, ...]:
        """The names registered to a service (empty if it is not registered)."""
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.services.get(service_id)
        return record.names if record else ()

    def name_view(
        self, service_id: str, names: Sequence[SubjectName]
    ) -> tuple[tuple[str, ...], dict[str, str]]:
        """`names_of(service_id)`, and every registered name (or pattern) that could cover one
        of `names` with the service it belongs to, read in one transaction.

        Only the patterns filed under the names' index keys are read (`ca/name_index.py`), so
        the cost does not grow with the number of registered services.
        """
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.services.get(service_id)
            return (record.names if record else ()), tx.services.owners_of(keys_for(names))

    def touch(self, service_id: str) -> bool:
        """Record that the service called us now; False if it is not registered."""
        with self.ctx.store.transaction() as tx:
            return tx.services.touch(service_id, self.ctx.clock.now())

    def current_certificate(self, service_id: str) -> CertificateRecord | None:
        """The service's newest active certificate."""
        with self.ctx.store.transaction(readonly=True) as tx:
            found = tx.certificates.search(
                CertificateQuery(
                    service_id=service_id,
                    status=CertStatus.ACTIVE,
                    now=self.ctx.clock.now(),
                    limit=1,
                )
            )
        return found[0] if found else None

    @staticmethod
    def _check_claims(
        caller: Caller, record: ServiceRecord, owners: dict[str, str], allowed: Sequence[str]
    ) -> None:
        granted = expand(allowed, record.service_id)
        for text in record.names:
            owner = owners.get(text)
            if owner is not None and owner != record.service_id:
                raise Conflict(
                    f"name {text} is already registered to service {owner!r}", field="names"
                )
            if caller.is_admin:
                continue
            name = _as_subject(text)
            wildcard = name.kind == "DNS" and name.value.startswith("*.")
            if (wildcard or granted) and not any(name_matches(p, name) for p in granted):
                raise PermissionDenied(
                    f"name {text} is not allowed for service {record.service_id!r} "
                    "by the whitelist",
                    field="names",
                    reason="name-not-allowed",
                )


def _as_subject(text: str) -> SubjectName:
    kind, _, value = text.partition(":")
    if kind not in ("DNS", "IP", "URI"):
        raise InvalidName(f"{text!r} is not a name", field="names")
    return SubjectName(kind, value)  # type: ignore[arg-type]


def _pick(new: T | None, old: T) -> T:
    return old if new is None else new


def _keys(registered: Sequence[str]) -> list[str]:
    """The index keys a registration claims (to find who already holds them)."""
    return [pattern_key(p) for p in registered]
