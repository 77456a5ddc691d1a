"""Issuance: names, SPIFFE id, extensions by profile, serials, validity, record-before-sign."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from pkiforge.ca.authorize import operator_rules
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.models import OPERATOR, CertificateQuery, CertStatus
from pkiforge.clock import FixedClock
from pkiforge.errors import PolicyViolation
from pkiforge.wiring import Pki
from pkiforge.x509.names import SubjectName

from .helpers import NOW, csr_bytes, leaf_key, make_pki, snapshot

DAY = dt.timedelta(days=1)
ISSUER_TYPES = ["rsa2048", "p256", "p384", "ed25519"]
LEAF_TYPES = ["rsa2048", "p256", "p384", "ed25519"]


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """A P-256 root with one intermediate per key type, named `i-<type>`."""
    pki = make_pki(tmp_path_factory.mktemp("multi") / "home", clock=FixedClock(NOW))
    for key_type in ISSUER_TYPES:
        pki.hierarchy.create_intermediate(f"i-{key_type}", key_type)  # type: ignore[arg-type]
    yield pki
    pki.close()


def ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(cls)


def sans(cert: x509.Certificate) -> set[str]:
    san = ext(cert, x509.SubjectAlternativeName).value
    out = {f"DNS:{v}" for v in san.get_values_for_type(x509.DNSName)}
    out |= {f"IP:{v}" for v in san.get_values_for_type(x509.IPAddress)}
    out |= {f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)}
    return out


@pytest.mark.parametrize("leaf_type", LEAF_TYPES)
@pytest.mark.parametrize("issuer_type", ISSUER_TYPES)
def test_issue_from_csr_every_key_type(multi: Pki, issuer_type: str, leaf_type: str) -> None:
    certs = multi.certificates
    request = certs.request_from_csr(
        csr_bytes(leaf_type), profile="service", service_id="web", issuer=f"i-{issuer_type}"
    )
    record = certs.issue(request)
    cert = record.certificate
    assert cert is not None
    issuer = multi.hierarchy.get(f"i-{issuer_type}").certificate
    assert issuer is not None
    cert.verify_directly_issued_by(issuer)
    assert cert.public_key() == leaf_key(leaf_type).public_key()
    assert record.issuer == f"i-{issuer_type}"
    assert record.status is CertStatus.ACTIVE
    stored = certs.get(record.serial)
    assert stored.certificate == cert
    assert stored.fingerprint == record.fingerprint


@pytest.mark.parametrize(
    ("key_type", "key_class"),
    [
        ("rsa2048", rsa.RSAPrivateKey),
        ("p256", ec.EllipticCurvePrivateKey),
        ("p384", ec.EllipticCurvePrivateKey),
        ("ed25519", ed25519.Ed25519PrivateKey),
    ],
    ids=["rsa2048", "p256", "p384", "ed25519"],
)
def test_issue_with_server_made_key(multi: Pki, key_type: str, key_class: type) -> None:
    request = IssueRequest(
        "api.example.internal",
        service_id="api",
        profile="server",
        key_type=key_type,  # type: ignore[arg-type]
    )
    issued = multi.certificates.issuance.issue(request, OPERATOR, operator_rules(request))
    record, key = issued.record, issued.key
    assert isinstance(key, key_class)
    assert record.certificate is not None
    assert record.certificate.public_key() == key.public_key()
    assert record.server_generated_key is True
    assert multi.certificates.get(record.serial).server_generated_key is True


def test_cn_is_always_among_the_sans(shared_pki: Pki) -> None:
    request = IssueRequest(
        "Web.Example.Internal",
        names=[SubjectName("DNS", "other.example.internal")],
        service_id="web",
        public_key=leaf_key("p256").public_key(),
    )
    cert = shared_pki.certificates.issue(request).certificate
    assert cert is not None
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "web.example.internal"
    assert {"DNS:web.example.internal", "DNS:other.example.internal"} <= sans(cert)


def test_cn_that_is_an_ip_becomes_an_ip_san(shared_pki: Pki) -> None:
    request = IssueRequest("10.1.2.3", service_id="db", public_key=leaf_key("p256").public_key())
    cert = shared_pki.certificates.issue(request).certificate
    assert cert is not None
    assert "IP:10.1.2.3" in sans(cert)


def test_spiffe_uri_san_names_the_service(shared_pki: Pki) -> None:
    request = shared_pki.certificates.request_from_csr(csr_bytes("p256"), service_id="payments")
    record = shared_pki.certificates.issue(request)
    assert record.certificate is not None
    assert "URI:spiffe://example.internal/payments" in sans(record.certificate)
    assert record.service_id == "payments"
    assert "URI:spiffe://example.internal/payments" in record.names


def test_service_id_is_read_back_from_a_spiffe_san_in_the_csr(shared_pki: Pki) -> None:
    request = shared_pki.certificates.request_from_csr(
        csr_bytes("p256"), extra_names=["URI:spiffe://example.internal/ledger"]
    )
    assert shared_pki.certificates.issue(request).service_id == "ledger"


@pytest.mark.parametrize(
    ("profile", "ekus"),
    [
        ("server", [ExtendedKeyUsageOID.SERVER_AUTH]),
        ("client", [ExtendedKeyUsageOID.CLIENT_AUTH]),
        ("service", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
    ids=["server", "client", "service"],
)
def test_eku_and_critical_extensions_by_profile(
    shared_pki: Pki, profile: str, ekus: list[x509.ObjectIdentifier]
) -> None:
    request = shared_pki.certificates.request_from_csr(
        csr_bytes("p256"), profile=profile, service_id="web"
    )
    cert = shared_pki.certificates.issue(request).certificate
    assert cert is not None
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == ekus
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical is True
    assert bc.value.ca is False
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical is True
    assert ku.value.digital_signature is True
    assert ku.value.key_cert_sign is False


@pytest.mark.parametrize(
    ("key_type", "profile", "key_encipherment"),
    [
        ("rsa2048", "server", True),
        ("rsa2048", "client", False),
        ("p256", "server", False),
    ],
    ids=["rsa-server", "rsa-client", "ecdsa-server"],
)
def test_key_encipherment_only_for_rsa_tls_servers(
    shared_pki: Pki, key_type: str, profile: str, key_encipherment: bool
) -> None:
    request = shared_pki.certificates.request_from_csr(
        csr_bytes(key_type), profile=profile, service_id="web"
    )
    cert = shared_pki.certificates.issue(request).certificate
    assert cert is not None
    assert ext(cert, x509.KeyUsage).value.key_encipherment is key_encipherment


def test_ski_aki_link_leaf_intermediate_root(shared_pki: Pki) -> None:
    request = shared_pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    leaf = shared_pki.certificates.issue(request).certificate
    inter = shared_pki.hierarchy.get("services").certificate
    root = shared_pki.hierarchy.get("root").certificate
    assert leaf is not None and inter is not None and root is not None

    def ski(c: x509.Certificate) -> bytes:
        return ext(c, x509.SubjectKeyIdentifier).value.digest  # type: ignore[no-any-return]

    def aki(c: x509.Certificate) -> bytes | None:
        return ext(c, x509.AuthorityKeyIdentifier).value.key_identifier  # type: ignore[no-any-return]

    assert ski(leaf) == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest
    assert aki(leaf) == ski(inter)
    assert aki(inter) == ski(root)
    assert aki(root) == ski(root)
    assert ext(inter, x509.BasicConstraints).value.path_length == 0
    assert ext(inter, x509.BasicConstraints).critical is True
    assert ext(inter, x509.KeyUsage).value.key_cert_sign is True
    assert ext(inter, x509.KeyUsage).value.crl_sign is True


def test_distribution_urls_appear_with_issuer_filled_in(shared_pki: Pki) -> None:
    request = shared_pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    leaf = shared_pki.certificates.issue(request).certificate
    inter = shared_pki.hierarchy.get("services").certificate
    assert leaf is not None and inter is not None
    points = ext(leaf, x509.CRLDistributionPoints).value
    assert [p.full_name[0].value for p in points] == [
        "http://pki.example.internal/crl/services.crl"
    ]
    aia = {
        d.access_method: d.access_location.value
        for d in ext(leaf, x509.AuthorityInformationAccess).value
    }
    assert aia == {
        AuthorityInformationAccessOID.OCSP: "http://pki.example.internal/ocsp/services",
        AuthorityInformationAccessOID.CA_ISSUERS: "http://pki.example.internal/ca/services.crt",
    }
    # the intermediate points at the root's CRL
    inter_points = ext(inter, x509.CRLDistributionPoints).value
    assert inter_points[0].full_name[0].value == "http://pki.example.internal/crl/root.crl"


def test_no_distribution_urls_when_not_configured(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "home", urls=None)
    try:
        request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
        leaf = pki.certificates.issue(request).certificate
        assert leaf is not None
        for cls in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
            with pytest.raises(x509.ExtensionNotFound):
                leaf.extensions.get_extension_for_class(cls)
    finally:
        pki.close()


def test_serials_are_large_positive_and_distinct(shared_pki: Pki) -> None:
    serials = set()
    for _ in range(20):
        request = shared_pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
        record = shared_pki.certificates.issue(request)
        assert record.certificate is not None
        assert record.certificate.serial_number == record.serial
        assert 2**63 < record.serial < 2**159
        serials.add(record.serial)
    assert len(serials) == 20


def test_validity_defaults_and_backdate(shared_pki: Pki) -> None:
    request = shared_pki.certificates.request_from_csr(
        csr_bytes("p256"), profile="server", service_id="web"
    )
    cert = shared_pki.certificates.issue(request).certificate
    assert cert is not None
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=1)
    assert cert.not_valid_after_utc == NOW + 90 * DAY


def test_explicit_validity_below_profile_maximum(shared_pki: Pki) -> None:
    """Below the maximum the validity runs from now, with the backdate before it."""
    request = shared_pki.certificates.request_from_csr(
        csr_bytes("p256"), profile="client", service_id="web", validity=364 * DAY
    )
    cert = shared_pki.certificates.issue(request).certificate
    assert cert is not None
    assert cert.not_valid_after_utc == NOW + 364 * DAY
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=1)


@pytest.mark.parametrize("explicit", [True, False], ids=["validity-at-maximum", "default"])
@pytest.mark.parametrize("profile", ["server", "client", "service"])
def test_whole_validity_is_within_the_profile_maximum(
    shared_pki: Pki, tmp_path: Path, profile: str, explicit: bool
) -> None:
    """notAfter - notBefore, backdate included, is at most the profile's maximum."""
    limits = shared_pki.ctx.config.profiles[profile]
    request = shared_pki.certificates.request_from_csr(
        csr_bytes("p256"),
        profile=profile,
        service_id="web",
        validity=limits.max_validity if explicit else None,
    )
    cert = shared_pki.certificates.issue(request).certificate
    assert cert is not None
    (tmp_path / "leaf.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    dates = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "leaf.pem"), "-noout", "-dates"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    shown = dict(line.split("=", 1) for line in dates.splitlines())
    not_before, not_after = (
        dt.datetime.strptime(shown[k], "%b %d %H:%M:%S %Y GMT").replace(tzinfo=dt.UTC)
        for k in ("notBefore", "notAfter")
    )
    assert not_before == NOW - dt.timedelta(minutes=1)  # still backdated for clock skew
    wanted = limits.max_validity if explicit else limits.default_validity
    assert not_after - not_before == min(wanted + dt.timedelta(minutes=1), limits.max_validity)


@pytest.mark.parametrize(
    ("profile", "days"),
    [("server", 398), ("client", 366), ("service", 366)],
    ids=["server-398d", "client-366d", "service-366d"],
)
def test_validity_above_profile_maximum_is_refused(
    shared_pki: Pki, profile: str, days: int
) -> None:
    before = snapshot(shared_pki)
    request = shared_pki.certificates.request_from_csr(
        csr_bytes("p256"), profile=profile, service_id="web", validity=days * DAY
    )
    with pytest.raises(PolicyViolation) as info:
        shared_pki.certificates.issue(request)
    assert info.value.field == "validity"
    assert f"{days} days exceeds" in str(info.value)
    assert snapshot(shared_pki) == before


def test_not_after_is_truncated_to_the_issuers(tmp_path: Path, clock: FixedClock) -> None:
    pki = make_pki(tmp_path / "home", clock=clock)
    try:
        short = pki.hierarchy.create_intermediate("short", "p256", 10 * DAY)
        assert short.certificate is not None
        request = pki.certificates.request_from_csr(
            csr_bytes("p256"), service_id="web", issuer="short"
        )
        cert = pki.certificates.issue(request).certificate
        assert cert is not None
        assert cert.not_valid_after_utc == short.certificate.not_valid_after_utc
        assert cert.not_valid_after_utc == NOW + 10 * DAY
        clock.advance(11 * DAY)  # the issuer has expired now
        with pytest.raises(PolicyViolation, match="expired") as info:
            pki.certificates.issue(request)
        assert info.value.field == "issuer"
    finally:
        pki.close()


def test_root_does_not_sign_leaves(shared_pki: Pki) -> None:
    request = shared_pki.certificates.request_from_csr(
        csr_bytes("p256"), service_id="web", issuer="root"
    )
    with pytest.raises(PolicyViolation, match="root CA only signs intermediates"):
        shared_pki.certificates.issue(request)


def test_issue_is_audited_with_its_serial(shared_pki: Pki) -> None:
    request = shared_pki.certificates.request_from_csr(csr_bytes("p256"), service_id="audited")
    record = shared_pki.certificates.issue(request)
    with shared_pki.store.transaction() as tx:
        entries = tx.audit.recent(5, action="cert.issue", subject=record.serial_hex)
    assert len(entries) == 1
    assert entries[0].details["service"] == "audited"
    assert entries[0].details["issuer"] == "services"


def test_search_finds_issued_by_service(shared_pki: Pki) -> None:
    request = shared_pki.certificates.request_from_csr(csr_bytes("p256"), service_id="findme")
    record = shared_pki.certificates.issue(request)
    found = shared_pki.certificates.search(CertificateQuery(service_id="findme"))
    assert [r.serial for r in found] == [record.serial]
    assert shared_pki.certificates.count(CertificateQuery(service_id="findme")) == 1


def test_service_id_defaults_to_the_normalised_cn(shared_pki: Pki) -> None:
    request = IssueRequest("Api.Example.Internal.", public_key=leaf_key("p256").public_key())
    record = shared_pki.certificates.issue(request)
    assert record.service_id == "api.example.internal"
    assert record.common_name == "api.example.internal"
    assert "URI:spiffe://example.internal/api.example.internal" in record.names
