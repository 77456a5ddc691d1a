"""Delta CRLs (RFC 5280 §5.2.4), checked with openssl and pkilint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.models import CertificateRecord
from pkiforge.clock import FixedClock
from pkiforge.errors import Conflict
from pkiforge.settings import CRLSettings, URLSettings
from pkiforge.wiring import Pki, build_pki

from .helpers import NOW, PASSPHRASE, attime, csr_bytes, make_pki, make_settings, openssl, write
from .lint import errors, lint_certificate, lint_crl

R = x509.ReasonFlags
DELTA_URL = "http://pki.example.internal/crl/{issuer}/delta.crl"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def pki(tmp_path: Path, clock: FixedClock) -> Iterator[Pki]:
    home = tmp_path / "home"
    home.mkdir()
    settings = make_settings(home).model_copy(
        update={
            "crl": CRLSettings(delta=True),
            "urls": URLSettings(crl="http://pki.example.internal/crl/{issuer}.crl",
                                delta_crl=DELTA_URL),
        }
    )  # fmt: skip
    p = build_pki(settings, PASSPHRASE, clock)
    p.hierarchy.initialize(InitOptions())
    yield p
    p.close()


def issue(pki: Pki, key: str = "p256") -> CertificateRecord:
    return pki.certificates.issue(
        pki.certificates.request_from_csr(csr_bytes(key), service_id="web")
    )


def number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_a_delta_lists_what_came_after_its_base_and_shares_the_number_sequence(
    pki: Pki, clock: FixedClock
) -> None:
    early, late = issue(pki), issue(pki, "rsa2048")
    pki.revocation.revoke(early.serial, R.key_compromise)
    clock.advance(dt.timedelta(minutes=1))
    base = pki.revocation.generate_crl("services")
    clock.advance(dt.timedelta(minutes=1))
    pki.revocation.revoke(late.serial, R.superseded)
    clock.advance(dt.timedelta(minutes=1))
    record = pki.revocation.generate_delta("services")
    delta = x509.load_der_x509_crl(record.der)
    indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical
    assert indicator.value.crl_number == base.number
    assert number(delta) == record.number == base.number + 1
    assert [r.serial_number for r in delta] == [late.serial]
    assert delta.next_update_utc == NOW + dt.timedelta(minutes=3, hours=1)
    # the next full CRL comes after the delta in the one sequence (RFC 5280 §5.2.3)
    full = pki.revocation.generate_crl("services")
    assert full.number == record.number + 1
    assert errors(lint_crl(delta)) == []


def test_certificates_name_the_delta_and_openssl_uses_it(
    pki: Pki, clock: FixedClock, tmp_path: Path
) -> None:
    gone = issue(pki)
    assert gone.certificate is not None
    freshest = gone.certificate.extensions.get_extension_for_class(x509.FreshestCRL)
    assert not freshest.critical
    names = [n for p in freshest.value for n in p.full_name or ()]
    assert names == [x509.UniformResourceIdentifier(DELTA_URL.replace("{issuer}", "services"))]
    assert not [f for f in errors(lint_certificate(gone.certificate)) if "spiffe" not in str(f)]

    base = pki.revocation.generate_crl("services")
    clock.advance(dt.timedelta(minutes=1))
    pki.revocation.revoke(gone.serial, R.key_compromise)  # only in the delta
    delta = pki.revocation.generate_delta("services")
    shown = tmp_path / "delta.crl"
    shown.write_bytes(delta.der)
    text = openssl("crl", "-inform", "DER", "-in", str(shown), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    assert "X509v3 Delta CRL Indicator: critical" in text.stdout
    shown_base = text.stdout.split("Delta CRL Indicator: critical")[1].split("\n")[1]
    assert int(shown_base.strip(), 16) == base.number  # openssl prints it in hex

    root = pki.hierarchy.get("root").certificate
    assert root is not None
    root_pem = write(tmp_path / "root.pem", root)
    chain = write(tmp_path / "chain.pem", pki.hierarchy.chain("services")[0])
    leaf = write(tmp_path / "leaf.pem", gone.certificate)
    base_pem = write(tmp_path / "base.pem", x509.load_der_x509_crl(base.der))
    both = write(
        tmp_path / "both.pem", x509.load_der_x509_crl(base.der), x509.load_der_x509_crl(delta.der)
    )

    def verify(crls: Path, *flags: str) -> tuple[int, str]:
        result = openssl(
            "verify", "-attime", attime(NOW + dt.timedelta(minutes=1)), "-crl_check", *flags,
            "-CAfile", str(root_pem), "-untrusted", str(chain), "-CRLfile", str(crls), str(leaf),
        )  # fmt: skip
        return result.returncode, result.stdout + result.stderr

    assert verify(base_pem)[0] == 0  # the base alone does not know
    code, out = verify(both, "-use_deltas")
    assert code != 0
    assert "certificate revoked" in out, out


def test_served_delta_is_replaced_after_a_revocation_and_kept_otherwise(
    pki: Pki, clock: FixedClock
) -> None:
    first, second = issue(pki), issue(pki, "rsa2048")
    served = pki.revocation.current_delta("services")  # signs the full CRL first
    assert served.base_number == pki.revocation.latest_crl("services").number
    assert pki.revocation.current_delta("services").number == served.number
    clock.advance(dt.timedelta(seconds=10))
    pki.revocation.revoke(first.serial, R.superseded)
    again = pki.revocation.current_delta("services")
    # either a new full CRL lists it (and a fresh delta completes that one) or the delta does
    full = x509.load_der_x509_crl(pki.revocation.latest_crl("services").der)
    delta = x509.load_der_x509_crl(again.der)
    listed = {r.serial_number for r in full} | {r.serial_number for r in delta}
    assert first.serial in listed and second.serial not in listed
    assert again.number > served.number
    assert again.base_number == number(full)


def test_deltas_off_by_default(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "home")
    try:
        record = issue(pki)
        assert record.certificate is not None
        with pytest.raises(x509.ExtensionNotFound):
            record.certificate.extensions.get_extension_for_class(x509.FreshestCRL)
        pki.revocation.generate_crl("services")
        with pytest.raises(Conflict, match=r"crl\.delta"):
            pki.revocation.generate_delta("services")
    finally:
        pki.close()
