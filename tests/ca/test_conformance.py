"""Independent checks: `openssl verify` chains and CRLs, pkilint lints every kind we emit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import validators
from cryptography import x509

from pkiforge.ca.models import CertificateRecord
from pkiforge.clock import FixedClock
from pkiforge.wiring import Pki

from .helpers import NOW, attime, csr_bytes, make_pki, openssl, write
from .lint import errors, is_spiffe_scheme_false_positive, lint_certificate, lint_crl

KEY_TYPES = ["p256", "p384", "rsa2048", "ed25519"]
PROFILES = ["server", "client", "service"]


class Hierarchy:
    """A PKI with one leaf per profile, one of them revoked, and CRLs of both CAs."""

    def __init__(self, pki: Pki, workdir: Path, key_type: str) -> None:
        self.pki = pki
        self.dir = workdir
        certs = pki.certificates
        self.leaves: dict[str, CertificateRecord] = {
            profile: certs.issue(
                certs.request_from_csr(csr_bytes(key_type), profile=profile, service_id="web")
            )
            for profile in PROFILES
        }
        self.revoked = certs.issue(
            certs.request_from_csr(csr_bytes(key_type), profile="service", service_id="gone")
        )
        pki.revocation.revoke(self.revoked.serial, x509.ReasonFlags.key_compromise)
        self.crl = x509.load_der_x509_crl(pki.revocation.generate_crl("services").der)
        self.root_crl = x509.load_der_x509_crl(pki.revocation.generate_crl("root").der)
        self.root = pki.hierarchy.get("root").certificate
        self.services = pki.hierarchy.get("services").certificate
        assert self.root is not None and self.services is not None
        self.root_pem = write(workdir / "root.pem", self.root)
        self.chain_pem = write(workdir / "chain.pem", *pki.hierarchy.chain("services")[:-1])
        self.crl_pem = write(workdir / "services.crl.pem", self.crl)
        self.root_crl_pem = write(workdir / "root.crl.pem", self.root_crl)

    def leaf_pem(self, record: CertificateRecord) -> Path:
        assert record.certificate is not None
        return write(self.dir / f"{record.serial_hex}.pem", record.certificate)

    def verify(self, record: CertificateRecord, *extra: str) -> tuple[int, str]:
        leaf = self.leaf_pem(record)
        result = openssl(
            "verify",
            "-x509_strict",
            "-attime",
            attime(),
            "-CAfile",
            str(self.root_pem),
            "-untrusted",
            str(self.chain_pem),
            *extra,
            str(leaf),
        )
        return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module", params=KEY_TYPES, ids=KEY_TYPES)
def hierarchy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hierarchy]:
    """Root, `services` intermediate and leaves all of one key type."""
    key_type = request.param
    workdir = tmp_path_factory.mktemp(key_type)
    pki = make_pki(
        workdir / "home",
        clock=FixedClock(NOW),
        root_key_type=key_type,
        intermediate_key_type=key_type,
    )
    yield Hierarchy(pki, workdir, key_type)
    pki.close()


@pytest.mark.parametrize("profile", PROFILES)
def test_openssl_verifies_leaf_chain_to_root(hierarchy: Hierarchy, profile: str) -> None:
    code, out = hierarchy.verify(hierarchy.leaves[profile])
    assert code == 0, out
    assert out.strip().endswith(": OK")


@pytest.mark.parametrize("profile", PROFILES)
def test_openssl_crl_check_passes_unrevoked_leaf(hierarchy: Hierarchy, profile: str) -> None:
    code, out = hierarchy.verify(
        hierarchy.leaves[profile], "-crl_check", "-CRLfile", str(hierarchy.crl_pem)
    )
    assert code == 0, out


def test_openssl_crl_check_fails_revoked_leaf(hierarchy: Hierarchy) -> None:
    code, out = hierarchy.verify(
        hierarchy.revoked, "-crl_check", "-CRLfile", str(hierarchy.crl_pem)
    )
    assert code != 0
    assert "certificate revoked" in out


def test_openssl_crl_check_all_covers_the_intermediate(hierarchy: Hierarchy) -> None:
    args = ["-crl_check_all", "-CRLfile", str(hierarchy.crl_pem)]
    args += ["-CRLfile", str(hierarchy.root_crl_pem)]
    ok_code, ok_out = hierarchy.verify(hierarchy.leaves["service"], *args)
    bad_code, bad_out = hierarchy.verify(hierarchy.revoked, *args)
    assert ok_code == 0, ok_out
    assert bad_code != 0
    assert "certificate revoked" in bad_out


def test_openssl_without_the_crl_cannot_pass_crl_check(hierarchy: Hierarchy) -> None:
    code, out = hierarchy.verify(hierarchy.leaves["service"], "-crl_check")
    assert code != 0
    assert "unable to get certificate CRL" in out


def test_openssl_refuses_a_foreign_root(hierarchy: Hierarchy, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    try:
        foreign_root = other.hierarchy.get("root").certificate
        assert foreign_root is not None
        foreign = write(tmp_path / "foreign-root.pem", foreign_root)
        leaf = hierarchy.leaf_pem(hierarchy.leaves["server"])
        result = openssl(
            "verify", "-attime", attime(), "-CAfile", str(foreign),
            "-untrusted", str(hierarchy.chain_pem), str(leaf),
        )  # fmt: skip
        assert result.returncode != 0
        assert "unable to get local issuer certificate" in result.stdout + result.stderr
    finally:
        other.close()


@pytest.mark.parametrize(
    ("profile", "purpose", "ok"),
    [
        ("server", "sslserver", True),
        ("server", "sslclient", False),
        ("client", "sslclient", True),
        ("client", "sslserver", False),
        ("service", "sslserver", True),
        ("service", "sslclient", True),
    ],
    ids=lambda v: str(v),
)
def test_openssl_purpose_follows_profile_eku(
    hierarchy: Hierarchy, profile: str, purpose: str, ok: bool
) -> None:
    code, out = hierarchy.verify(hierarchy.leaves[profile], "-purpose", purpose)
    assert (code == 0) is ok, out


def _report(what: str, findings: list[tuple[str, str, str]]) -> None:
    for severity, code, where in findings:
        if severity not in ("INFO",):
            print(f"pkilint {what}: {severity} {code} {where}")


def test_pkilint_root_has_no_error(hierarchy: Hierarchy) -> None:
    findings = lint_certificate(hierarchy.root)
    _report("root", findings)
    assert errors(findings) == []


def test_pkilint_intermediate_has_no_error(hierarchy: Hierarchy) -> None:
    findings = lint_certificate(hierarchy.services)
    _report("intermediate", findings)
    assert errors(findings) == []


@pytest.mark.parametrize("profile", PROFILES)
def test_pkilint_leaf_has_no_error(hierarchy: Hierarchy, profile: str) -> None:
    cert = hierarchy.leaves[profile].certificate
    assert cert is not None
    findings = lint_certificate(cert)
    _report(f"{profile} leaf", findings)
    assert errors(findings) == []


@pytest.mark.parametrize("which", ["services", "root"])
def test_pkilint_crl_has_no_error(hierarchy: Hierarchy, which: str) -> None:
    crl = hierarchy.crl if which == "services" else hierarchy.root_crl
    findings = lint_crl(crl)
    _report(f"{which} CRL", findings)
    assert errors(findings) == []
    assert any(r.serial_number == hierarchy.revoked.serial for r in hierarchy.crl)


def test_pkilint_spiffe_exception_is_only_the_scheme(hierarchy: Hierarchy) -> None:
    """The one ERROR we tolerate is pkilint's scheme allow-list; the URI itself is sound."""
    cert = hierarchy.leaves["service"].certificate
    assert cert is not None
    tolerated = [f for f in lint_certificate(cert) if is_spiffe_scheme_false_positive(f)]
    assert len(tolerated) == 1
    uri = "spiffe://example.internal/web"
    assert uri in tolerated[0][2]
    assert validators.url(uri.replace("spiffe://", "https://", 1)) is True
    assert validators.url(uri) is not True
