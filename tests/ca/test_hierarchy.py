"""The CA hierarchy: init, intermediates, offline root, imports, key custody at rest."""

from __future__ import annotations

import base64
import hashlib
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.models import CAKind, CAStatus
from pkiforge.errors import Conflict, IntegrityError, InvalidInput, NotFound
from pkiforge.settings import CASettings
from pkiforge.wiring import Pki

from .helpers import PASSPHRASE, attime, csr_bytes, make_pki, openssl, snapshot, write


def issue(pki: Pki, issuer: str = "services") -> x509.Certificate:
    request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web", issuer=issuer)
    cert = pki.certificates.issue(request).certificate
    assert cert is not None
    return cert


def openssl_verify(tmp_path: Path, pki: Pki, issuer: str, leaf: x509.Certificate) -> str:
    chain = pki.hierarchy.chain(issuer)
    root = write(tmp_path / "root.pem", chain[-1])
    untrusted = write(tmp_path / "chain.pem", *chain[:-1])
    leaf_file = write(tmp_path / "leaf.pem", leaf)
    result = openssl(
        "verify", "-x509_strict", "-attime", attime(), "-CAfile", str(root),
        "-untrusted", str(untrusted), str(leaf_file),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_init_creates_root_and_services(pki: Pki) -> None:
    cas = {ca.name: ca for ca in pki.hierarchy.all()}
    assert set(cas) == {"root", "services"}
    root, services = cas["root"], cas["services"]
    assert (root.kind, root.status, root.parent) == (CAKind.ROOT, CAStatus.ACTIVE, None)
    assert (services.kind, services.parent) == (CAKind.INTERMEDIATE, "root")
    assert root.key_ref == "file:ca/root/key.pem"
    assert root.certificate is not None and services.certificate is not None
    assert root.certificate.subject.rfc4514_string() == "CN=pkiforge Root CA,O=pkiforge"
    assert services.certificate.issuer == root.certificate.subject
    # both CA certificates are in the inventory
    for ca in (root, services):
        assert ca.certificate is not None
        assert pki.certificates.get(ca.certificate.serial_number).status.value == "active"
    with pki.store.transaction() as tx:
        actions = [e.action for e in tx.audit.iterate()]
    assert actions == ["ca.init-root", "ca.sign-intermediate", "ca.create-intermediate"]


def test_init_twice_is_refused(pki: Pki) -> None:
    before = snapshot(pki)
    with pytest.raises(Conflict, match="already initialised"):
        pki.hierarchy.initialize(InitOptions())
    assert snapshot(pki) == before


def test_default_rsa4096_root(tmp_path: Path) -> None:
    """The one test that pays for the default RSA-4096 root (and RSA-2048 intermediate)."""
    defaults = CASettings()
    pki = make_pki(
        tmp_path / "home",
        root_key_type=defaults.root_key_type,
        intermediate_key_type=defaults.intermediate_key_type,
    )
    try:
        root = pki.hierarchy.get("root").certificate
        inter = pki.hierarchy.get("services").certificate
        assert root is not None and inter is not None
        assert isinstance(root.public_key(), rsa.RSAPublicKey)
        assert root.public_key().key_size == 4096  # type: ignore[union-attr]
        assert inter.public_key().key_size == 2048  # type: ignore[union-attr]
        assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
        out = openssl_verify(tmp_path, pki, "services", issue(pki))
        assert out.strip().endswith(": OK")
    finally:
        pki.close()


def test_create_intermediate_and_chain(pki: Pki, tmp_path: Path) -> None:
    edge = pki.hierarchy.create_intermediate("edge", "ed25519")
    assert edge.status is CAStatus.ACTIVE
    chain = pki.hierarchy.chain("edge")
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=pkiforge edge CA,O=pkiforge",
        "CN=pkiforge Root CA,O=pkiforge",
    ]
    openssl_verify(tmp_path, pki, "edge", issue(pki, "edge"))


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("services", Conflict, "CA 'services' already exists"),
        ("Edge", InvalidInput, "CA name 'Edge' is invalid"),
        ("edge/1", InvalidInput, "CA name 'edge/1' is invalid"),
        ("-edge", InvalidInput, "CA name '-edge' is invalid"),
    ],
    ids=["taken", "capital", "slash", "leading-hyphen"],
)
def test_create_intermediate_refusals(
    pki: Pki, name: str, error: type[Exception], words: str
) -> None:
    before = snapshot(pki)
    with pytest.raises(error, match=re.escape(words)):
        pki.hierarchy.create_intermediate(name, "p256")
    assert snapshot(pki) == before


def test_offline_root_flow(tmp_path: Path) -> None:
    offline = tmp_path / "usb" / "root-key.pem"
    home = tmp_path / "home"
    pki = make_pki(home, options=InitOptions(root_key_location=str(offline)))
    try:
        root = pki.hierarchy.get("root")
        assert root.key_ref is None
        assert offline.is_file()
        assert not (home / "ca" / "root").exists()
        root_ref = f"file:{offline}"

        # without the root key nothing can be signed by the root, and nothing is written
        before = snapshot(pki)
        with pytest.raises(Conflict, match="kept offline") as info:
            pki.hierarchy.create_intermediate("edge", "p256")
        assert info.value.data["field"] == "key"
        with pytest.raises(Conflict, match="kept offline"):
            pki.revocation.generate_crl("root")
        assert snapshot(pki) == before

        # the intermediate's key is made here; the root signs its CSR (with the key at hand)
        csr = pki.hierarchy.create_intermediate_csr("edge", "p256")
        assert pki.hierarchy.get("edge").status is CAStatus.PENDING
        with pytest.raises(Conflict, match="CA 'edge' is pending, not active") as pending:
            issue(pki, "edge")
        assert pending.value.data["field"] == "issuer"
        cert = pki.hierarchy.sign_intermediate(
            csr.public_bytes(Encoding.PEM), root_key_ref=root_ref
        )
        edge = pki.hierarchy.import_intermediate("edge", cert)
        assert edge.status is CAStatus.ACTIVE
        assert edge.key_ref == "file:ca/edge/key.pem"
        openssl_verify(tmp_path, pki, "edge", issue(pki, "edge"))

        # the root's CRL and a direct intermediate work when the key location is given
        crl = pki.revocation.generate_crl("root", key_ref=root_ref)
        assert crl.number == 1
        direct = pki.hierarchy.create_intermediate("direct", "p256", root_key_ref=root_ref)
        assert direct.status is CAStatus.ACTIVE
    finally:
        pki.close()


def test_sign_intermediate_refuses_a_weak_key(tmp_path: Path) -> None:
    from pkiforge.errors import WeakKey

    pki = make_pki(tmp_path / "home")
    try:
        before = snapshot(pki)
        with pytest.raises(WeakKey, match="1024 bits"):
            pki.hierarchy.sign_intermediate(csr_bytes("rsa1024"), name="weak")
        with pytest.raises(InvalidInput, match="CSR signature does not verify"):
            pki.hierarchy.sign_intermediate(csr_bytes("bad-signature"), name="bad")
        assert snapshot(pki) == before
    finally:
        pki.close()


@pytest.fixture
def donor(tmp_path: Path) -> Iterator[Pki]:
    """Another installation whose root and `services` we import."""
    pki = make_pki(tmp_path / "donor")
    yield pki
    pki.close()


def ca_key(pki: Pki, name: str) -> CertificateIssuerPrivateKeyTypes:
    ref = pki.hierarchy.get(name).key_ref
    assert ref is not None
    return pki.ctx.keys.load(ref)


def test_import_root_and_intermediate(donor: Pki, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "home", init=False)
    try:
        root_cert = donor.hierarchy.get("root").certificate
        inter_cert = donor.hierarchy.get("services").certificate
        assert root_cert is not None and inter_cert is not None
        root = pki.hierarchy.import_root(root_cert, ca_key(donor, "root"))
        assert root.key_ref == "file:ca/root/key.pem"
        inter = pki.hierarchy.import_intermediate("services", inter_cert, ca_key(donor, "services"))
        assert inter.status is CAStatus.ACTIVE
        assert pki.certificates.get(inter_cert.serial_number).profile == "intermediate-ca"
        openssl_verify(tmp_path, pki, "services", issue(pki))
        with pytest.raises(Conflict, match="a root CA already exists"):
            pki.hierarchy.import_root(root_cert, None)
    finally:
        pki.close()


def test_import_root_without_key_is_offline(donor: Pki, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "home", init=False)
    try:
        root_cert = donor.hierarchy.get("root").certificate
        assert root_cert is not None
        root = pki.hierarchy.import_root(root_cert, None)
        assert root.key_ref is None
        with pytest.raises(Conflict, match="kept offline"):
            pki.hierarchy.create_intermediate("edge", "p256")
    finally:
        pki.close()


def test_import_root_refusals(donor: Pki, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "home", init=False)
    try:
        root_cert = donor.hierarchy.get("root").certificate
        inter_cert = donor.hierarchy.get("services").certificate
        assert root_cert is not None and inter_cert is not None
        leaf = issue(donor)
        cases = [
            (leaf, None, "not a CA certificate: basicConstraints cA is false", "certificate"),
            (inter_cert, None, "a root CA certificate must be self-signed", "certificate"),
            (root_cert, ca_key(donor, "services"), "does not match the key", "key"),
        ]
        before = snapshot(pki)
        for cert, key, words, field in cases:
            with pytest.raises(InvalidInput, match=re.escape(words)) as info:
                pki.hierarchy.import_root(cert, key)
            assert info.value.field == field
        assert snapshot(pki) == before
    finally:
        pki.close()


def test_import_intermediate_refusals(donor: Pki, tmp_path: Path) -> None:
    stranger = make_pki(tmp_path / "stranger")
    pki = make_pki(tmp_path / "home", init=False)
    try:
        root_cert = donor.hierarchy.get("root").certificate
        inter_cert = donor.hierarchy.get("services").certificate
        assert root_cert is not None and inter_cert is not None
        pki.hierarchy.import_root(root_cert, ca_key(donor, "root"))
        foreign = stranger.hierarchy.get("services").certificate
        assert foreign is not None
        before = snapshot(pki)

        with pytest.raises(InvalidInput, match="basicConstraints cA is false"):
            pki.hierarchy.import_intermediate("edge", issue(donor), ca_key(donor, "services"))
        with pytest.raises(IntegrityError, match="was not issued by CN=pkiforge Root CA"):
            pki.hierarchy.import_intermediate("edge", foreign, ca_key(stranger, "services"))
        with pytest.raises(InvalidInput, match="does not match the CA key") as info:
            pki.hierarchy.import_intermediate("edge", inter_cert, ca_key(stranger, "services"))
        assert info.value.field == "certificate"
        with pytest.raises(InvalidInput, match="no pending CSR for 'edge'"):
            pki.hierarchy.import_intermediate("edge", inter_cert)
        assert snapshot(pki) == before
    finally:
        stranger.close()
        pki.close()


# --- key custody -------------------------------------------------------------------------


def test_ca_key_files_are_0600_in_0700_directories(pki: Pki) -> None:
    home = pki.settings.home
    for name in ("root", "services"):
        key = home / "ca" / name / "key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    leftovers = [p.name for p in (home / "ca").rglob("*.tmp")]
    assert leftovers == []


def test_passphrase_is_written_nowhere(pki: Pki) -> None:
    issue(pki)
    for path in pki.settings.home.rglob("*"):
        if path.is_file():
            assert PASSPHRASE not in path.read_bytes(), path


def _stretched_password(key_file: Path, passphrase: bytes) -> str:
    """Recompute the PKCS#8 password with hashlib's scrypt (not our code), per the header."""
    header = key_file.read_text().splitlines()[0]
    match = re.fullmatch(r"pkiforge-kdf: scrypt ln=(\d+) r=(\d+) p=(\d+) salt=(\S+)", header)
    assert match, header
    ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
    derived = hashlib.scrypt(
        passphrase,
        salt=base64.b64decode(match.group(4)),
        n=2**ln,
        r=r,
        p=p,
        dklen=32,
        maxmem=2**26,
    )
    return base64.b64encode(derived).decode()


def test_key_file_opens_with_openssl_only_through_the_stretched_password(pki: Pki) -> None:
    key_file = pki.settings.home / "ca" / "services" / "key.pem"
    text = key_file.read_text()
    assert text.splitlines()[0].startswith("pkiforge-kdf: scrypt ln=14 r=8 p=1 salt=")
    assert "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text
    assert "-----BEGIN PRIVATE KEY-----" not in text

    raw = openssl("pkey", "-in", str(key_file), "-passin", f"pass:{PASSPHRASE.decode()}")
    assert raw.returncode != 0
    assert "BEGIN PRIVATE KEY" not in raw.stdout

    password = _stretched_password(key_file, PASSPHRASE)
    opened = openssl("pkey", "-in", str(key_file), "-passin", f"pass:{password}", "-pubout")
    assert opened.returncode == 0, opened.stderr
    cert = pki.hierarchy.get("services").certificate
    assert cert is not None
    expected = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    assert opened.stdout.encode() == expected


def test_missing_key_file_is_not_found(pki: Pki) -> None:
    (pki.settings.home / "ca" / "services" / "key.pem").unlink()
    request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    before = snapshot(pki)
    with pytest.raises(NotFound, match=r"CA key file .*key\.pem not found"):
        pki.certificates.issue(request)
    assert snapshot(pki) == before
