"""Leaf certificates as an operator sees them: issue and renew (through `Issuance`), look up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from cryptography import x509

from pkiforge.ca.authorize import operator_rules
from pkiforge.ca.context import CAContext
from pkiforge.ca.enrollment import EnrollmentService
from pkiforge.ca.issuance import Issuance
from pkiforge.ca.issue_request import IssueRequest, parse_names, renewal_request
from pkiforge.ca.models import (
    OPERATOR,
    Actor,
    CertificateQuery,
    CertificateRecord,
    format_serial,
    parse_serial,
)
from pkiforge.ca.paging import CertificatePage, read_page
from pkiforge.errors import InvalidInput, NotFound
from pkiforge.x509.csr import load_csr

# shortest serial prefix taken for a whole serial: 32 bits, so that a typo rarely lands on
# another certificate of the inventory
MIN_SERIAL_PREFIX = 8


def _long_enough(typed: str, digits: str) -> bool:
    """Whether a prefix has MIN_SERIAL_PREFIX digits: `digits` is it normalised, without the
    leading zero that openssl adds to a serial of an odd number of hex digits (it prints whole
    octets), so `0F65437C` copied from `openssl x509 -serial` counts as typed."""
    if len(digits) >= MIN_SERIAL_PREFIX:
        return True
    typed_digits = typed.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    return len(typed_digits) >= MIN_SERIAL_PREFIX and len(digits) == len(typed_digits) - 1


class OperatorCertificates:
    """Issue, renew and find leaf certificates."""

    def __init__(self, ctx: CAContext) -> None:
        self.ctx = ctx
        self.issuance = Issuance(ctx, EnrollmentService(ctx))

    def request_from_csr(
        self,
        csr_data: bytes,
        *,
        common_name: str | None = None,
        extra_names: Sequence[str] = (),
        service_id: str | None = None,
        profile: str = "service",
        issuer: str | None = None,
        validity: dt.timedelta | None = None,
    ) -> IssueRequest:
        """An IssueRequest for a CSR (its CN and SANs are requested names) and `DNS:x` strings.

        Raises:
            InvalidCSR: not a CSR. InvalidName, PolicyViolation: a malformed extra name.
        """
        return IssueRequest(
            common_name,
            parse_names(extra_names),
            service_id,
            profile,
            issuer,
            validity,
            csr=load_csr(csr_data),
        )

    def issue(self, request: IssueRequest, actor: Actor = OPERATOR) -> CertificateRecord:
        """Issue as an operator (`Issuance.issue` under the operator's rules).

        Raises:
            PolicyViolation, InvalidName, InvalidCSR, WeakKey, InvalidInput: refused request.
            NotFound, Conflict: unknown or unusable issuer. BadPassphrase: key locked.
        """
        return self.issuance.issue(request, actor, operator_rules(request)).record

    def renew(
        self,
        serial: int,
        *,
        csr_data: bytes | None = None,
        validity: dt.timedelta | None = None,
        actor: Actor = OPERATOR,
    ) -> CertificateRecord:
        """Issue a successor with the same names, profile, service and issuer, as an operator.

        The same public key is reused unless a CSR brings a new one; the old certificate
        stays valid until it expires, so a service can switch over at leisure.

        Raises:
            NotFound: unknown serial. Conflict: revoked, never issued, or a CA certificate.
            PolicyViolation: the CSR asks for new names.
        """
        csr = load_csr(csr_data) if csr_data is not None else None
        request = renewal_request(self.get(serial), csr, validity, self.ctx.config.backdate)
        return self.issuance.issue(request, actor, operator_rules(request)).record

    def get(self, serial: int) -> CertificateRecord:
        """Raises NotFound."""
        with self.ctx.store.transaction(readonly=True) as tx:
            record = tx.certificates.get(serial)
        if record is None:
            raise NotFound(f"no certificate with serial {serial:x}", field="serial")
        return record

    def resolve_serial(self, text: str) -> int:
        """The serial of `text`: a whole serial, or a prefix of at least MIN_SERIAL_PREFIX hex
        digits that starts exactly one stored serial (as `cert list` shows them).

        Raises:
            InvalidInput: not hex, a prefix too short to take, or one that more than one
                serial starts with.
            NotFound: no certificate has it.
        """
        try:
            serial = parse_serial(text)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="serial") from None
        with self.ctx.store.transaction(readonly=True) as tx:
            if tx.certificates.get(serial) is not None:
                return serial
            digits = format_serial(serial)  # normalised: lower case, no leading zeros
            if not _long_enough(text, digits):  # the value is wrong, not the store
                raise InvalidInput(
                    f"no certificate with serial {digits}, and a prefix needs at least "
                    f"{MIN_SERIAL_PREFIX} hex digits",
                    field="serial",
                )
            query = CertificateQuery(serial_prefix=digits, limit=2)
            found = tx.certificates.search(query)
            if len(found) > 1:
                count = tx.certificates.count(query)
                raise InvalidInput(
                    f"serial prefix {digits} matches {count} certificates; give more digits",
                    field="serial",
                )
        if not found:
            raise NotFound(
                f"no certificate with serial {digits} or starting with it", field="serial"
            )
        return found[0].serial

    def search(self, query: CertificateQuery) -> list[CertificateRecord]:
        with self.ctx.store.transaction(readonly=True) as tx:
            return tx.certificates.search(replace(query, now=query.now or self.ctx.clock.now()))

    def count(self, query: CertificateQuery) -> int:
        with self.ctx.store.transaction(readonly=True) as tx:
            return tx.certificates.count(replace(query, now=query.now or self.ctx.clock.now()))

    def page(self, query: CertificateQuery) -> CertificatePage:
        """One page of the inventory, where the next starts, and the total (maybe estimated)."""
        with self.ctx.store.transaction(readonly=True) as tx:
            return read_page(tx.certificates, replace(query, now=query.now or self.ctx.clock.now()))


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The SANs of a certificate as `KIND:value` strings."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = [f"DNS:{v}" for v in san.get_values_for_type(x509.DNSName)]
    out += [f"IP:{v}" for v in san.get_values_for_type(x509.IPAddress)]
    out += [f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return out
