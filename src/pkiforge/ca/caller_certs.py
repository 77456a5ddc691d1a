"""Certificates on a service's behalf: authorize the caller (`ca/authorize.py`), then issue
through `Issuance` under the rules that produced; revoke and read with the whitelist's checks.
This is what the API calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cryptography import x509

from pkiforge.ca.authorization import Caller, Operation, require
from pkiforge.ca.authorize import renewal_rules, service_rules
from pkiforge.ca.issuance import Issuance, Issued
from pkiforge.ca.issue_request import IssueRequest, renewal_request
from pkiforge.ca.issue_rules import check_names_owned
from pkiforge.ca.models import CertificateQuery, CertificateRecord, CertStatus
from pkiforge.ca.operator_certs import OperatorCertificates
from pkiforge.ca.paging import CertificatePage
from pkiforge.ca.registry import RegistryService
from pkiforge.ca.revocation import RevocationService
from pkiforge.x509.names import SubjectName


@dataclass
class CallerCertificates:
    """Issue, renew, revoke and read certificates for an authenticated caller."""

    certificates: OperatorCertificates
    revocation: RevocationService
    registry: RegistryService
    issuance: Issuance

    def request(self, request: IssueRequest, caller: Caller) -> Issued:
        """Issue a certificate (and a key when no CSR is sent); a token is spent only on success.

        Raises:
            PermissionDenied, RateLimited, AuthenticationFailed (token), InvalidInput,
            StoreUnavailable, plus `Issuance.issue`'s errors.
        """
        rules = service_rules(
            caller,
            request,
            registry=self.registry,
            count_active=self._active,
            trust_domain=self.certificates.ctx.config.trust_domain,
        )
        return self.issuance.issue(request, caller.actor, rules)

    def check_names(self, caller: Caller, names: Sequence[SubjectName]) -> None:
        """Whether the caller may have a certificate for `names`, by the rules `request` applies
        (ACME asks this at newOrder, before any challenge).

        Raises:
            PermissionDenied: not allowed to request, or naming the first refused name.
        """
        rules = service_rules(
            caller,
            IssueRequest(service_id=caller.service_id),
            registry=self.registry,
            count_active=self._active,
            trust_domain=self.certificates.ctx.config.trust_domain,
        )
        if names:
            check_names_owned(rules, names[0].value, names)

    def renew(
        self,
        serial: int,
        caller: Caller,
        *,
        csr: x509.CertificateSigningRequest | None = None,
        validity: dt.timedelta | None = None,
    ) -> CertificateRecord:
        """Issue a successor of the caller's own certificate (any, as admin).

        At the service's `max_certificates` the renewed certificate is revoked (superseded)
        as its successor is recorded (`renewal_rules`).

        Raises:
            NotFound, PermissionDenied, RateLimited, Conflict, InvalidInput.
        """
        old = self.certificates.get(serial)
        ctx = self.certificates.ctx
        rules = renewal_rules(
            caller,
            old,
            registry=self.registry,
            count_active=self._active,
            trust_domain=ctx.config.trust_domain,
            now=ctx.clock.now(),
        )
        request = renewal_request(old, csr, validity, ctx.config.backdate)
        return self.issuance.issue(request, caller.actor, rules).record

    def revoke(
        self,
        serial: int,
        caller: Caller,
        reason: x509.ReasonFlags,
        invalidity_date: dt.datetime | None = None,
    ) -> CertificateRecord:
        """Revoke the caller's own certificate (any, as admin).

        Raises:
            NotFound, PermissionDenied, Conflict, InvalidInput.
        """
        old = self.certificates.get(serial)
        require(caller, Operation.REVOKE, old.service_id or "")
        record = self.revocation.revoke(
            serial, reason, invalidity_date=invalidity_date, actor=caller.actor
        )
        self.issuance.events.revoked(record)
        return record

    def get(self, serial: int, caller: Caller) -> CertificateRecord:
        """One of the caller's certificates (any, as admin).

        Raises:
            NotFound, PermissionDenied.
        """
        record = self.certificates.get(serial)
        require(caller, Operation.DOWNLOAD, record.service_id or "")
        return record

    def search(self, query: CertificateQuery, caller: Caller) -> CertificatePage:
        """A page of the caller's certificates (anyone's, as admin) and the total matching.

        Raises:
            PermissionDenied: asking for another service's certificates.
        """
        require(caller, Operation.LIST, query.service_id or caller.service_id)
        if not caller.is_admin:
            query = replace(query, service_id=caller.service_id)
        return self.certificates.page(query)

    def _active(self, service_id: str) -> int:
        return self.certificates.count(
            CertificateQuery(service_id=service_id, status=CertStatus.ACTIVE)
        )
