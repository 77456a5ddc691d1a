"""What ca/crl.py relies on in cryptography beyond its documented API: this fails on an
upgrade that breaks it, before a CRL does.

`build_crl` hands every entry to `CertificateRevocationListBuilder(revoked_certificates=...)`
in one list: the documented `add_revoked_certificate` returns a new builder holding a copy of
the list plus one, so n calls cost n²/2 copies. The constructor's keywords are not in the
documentation. pyproject.toml pins cryptography below the next major version.
"""

from __future__ import annotations

import datetime as dt
import inspect

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .helpers import leaf_key

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
NAME = x509.Name.from_rfc4514_string("CN=contract")


def _entry(serial: int) -> x509.RevokedCertificate:
    return x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build()


def test_the_crl_builder_takes_its_entries_in_the_constructor() -> None:
    params = inspect.signature(x509.CertificateRevocationListBuilder).parameters
    assert "revoked_certificates" in params


def test_entries_given_to_the_constructor_are_signed_in_order_and_kept_by_the_setters() -> None:
    entries = [_entry(serial) for serial in (5, 3, 2**158 + 1)]
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=entries)
        .issuer_name(NAME)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    crl = builder.sign(leaf_key("p256"), hashes.SHA256())
    assert [r.serial_number for r in crl] == [5, 3, 2**158 + 1]
    # and the documented method still appends to what the constructor was given
    more = builder.add_revoked_certificate(_entry(7)).sign(leaf_key("p256"), hashes.SHA256())
    assert [r.serial_number for r in more] == [5, 3, 2**158 + 1, 7]
