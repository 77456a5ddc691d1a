"""Revoking a CA: never through the leaf path, never the root; the root's CRL lists it, it
issues nothing more, other processes notice, and openssl agrees."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography import x509

from pkiforge.ca.models import CAStatus, CertificateRecord, CertStatus, Revocation
from pkiforge.clock import FixedClock
from pkiforge.errors import Conflict, InvalidInput, NotFound
from pkiforge.wiring import Pki, build_pki

from .helpers import NOW, PASSPHRASE, attime, csr_bytes, make_pki, make_settings, openssl, write

R = x509.ReasonFlags


def issue(pki: Pki, issuer: str = "services") -> CertificateRecord:
    certs = pki.certificates
    return certs.issue(certs.request_from_csr(csr_bytes("p256"), service_id="web", issuer=issuer))


def ca_serial(pki: Pki, name: str) -> int:
    cert = pki.hierarchy.get(name).certificate
    assert cert is not None
    return cert.serial_number


def root_crl(pki: Pki) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(pki.revocation.latest_crl("root").der)


@pytest.fixture
def agents(pki: Pki) -> Pki:
    """The `pki` fixture with a second intermediate, `agents`."""
    pki.hierarchy.create_intermediate("agents")
    return pki


# --- the leaf path refuses CA certificates ----------------------------------------------


@pytest.mark.parametrize("name", ["root", "services"])
def test_leaf_revoke_refuses_a_ca_certificate(pki: Pki, name: str) -> None:
    serial = ca_serial(pki, name)
    with pytest.raises(Conflict, match="pkiforge ca revoke") as caught:
        pki.revocation.revoke(serial, R.ca_compromise)
    assert caught.value.data["field"] == "serial"
    assert pki.certificates.get(serial).status is CertStatus.ACTIVE
    assert pki.hierarchy.get(name).status is CAStatus.ACTIVE


@pytest.mark.parametrize("name", ["root", "services"])
def test_leaf_renew_refuses_a_ca_certificate(pki: Pki, name: str) -> None:
    with pytest.raises(Conflict, match="does not renew CA certificates"):
        pki.certificates.renew(ca_serial(pki, name))


# --- ca revoke ---------------------------------------------------------------------------


def test_ca_revoke_marks_the_ca_and_its_certificate_and_audits(agents: Pki) -> None:
    when = NOW - dt.timedelta(hours=2)
    done = agents.ca_revocation.revoke("agents", R.ca_compromise, invalidity_date=when)
    serial = ca_serial(agents, "agents")
    assert done.ca.status is CAStatus.REVOKED
    assert agents.hierarchy.get("agents").status is CAStatus.REVOKED
    record = agents.certificates.get(serial)
    assert record.status is CertStatus.REVOKED and record.revocation is not None
    assert record.revocation.reason is R.ca_compromise
    assert record.revocation.invalidity_date == when
    assert done.was_default_issuer is False
    with agents.store.transaction(readonly=True) as tx:
        (entry,) = tx.audit.recent(1, action="ca.revoke")
    assert entry.subject == "agents" and entry.actor == "operator:cli"
    assert entry.details["serial"] == f"{serial:x}"
    assert entry.details["reason"] == "cACompromise"


def test_the_root_crl_lists_the_intermediate_and_never_the_root(agents: Pki) -> None:
    done = agents.ca_revocation.revoke("agents", R.ca_compromise)
    assert done.root_crl is not None and done.root_crl_problem is None
    crl = root_crl(agents)
    entry = crl.get_revoked_certificate_by_serial_number(ca_serial(agents, "agents"))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        R.ca_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(ca_serial(agents, "root")) is None
    assert crl.get_revoked_certificate_by_serial_number(ca_serial(agents, "services")) is None


def test_a_revoked_ca_issues_nothing(agents: Pki) -> None:
    old = issue(agents, "agents")
    agents.ca_revocation.revoke("agents")
    with pytest.raises(Conflict, match="CA 'agents' is revoked") as caught:
        issue(agents, "agents")
    assert caught.value.data["field"] == "issuer"
    assert "default issuer" not in str(caught.value)
    with pytest.raises(Conflict, match="CA 'agents' is revoked"):
        agents.certificates.renew(old.serial)
    with pytest.raises(Conflict, match="'agents' is revoked"):  # nor its CRL: it signs nothing
        agents.revocation.generate_crl("agents")
    assert issue(agents, "services").issuer == "services"  # the others carry on


def test_revoking_the_default_issuer_says_so(pki: Pki) -> None:
    done = pki.ca_revocation.revoke("services", R.cessation_of_operation)
    assert done.was_default_issuer is True
    with pytest.raises(Conflict, match="default issuer"):
        issue(pki, None)  # type: ignore[arg-type]


def test_the_root_is_never_revoked(pki: Pki) -> None:
    with pytest.raises(Conflict, match="the root is never revoked; retire/replace it"):
        pki.ca_revocation.revoke("root", R.ca_compromise)
    assert pki.hierarchy.get("root").status is CAStatus.ACTIVE
    assert pki.certificates.get(ca_serial(pki, "root")).status is CertStatus.ACTIVE


def test_a_revoked_ca_is_not_revoked_twice(agents: Pki) -> None:
    agents.ca_revocation.revoke("agents", R.ca_compromise)
    with pytest.raises(Conflict, match=r"already revoked \(cACompromise"):
        agents.ca_revocation.revoke("agents")


@pytest.mark.parametrize(
    ("name", "error"),
    [("nope", NotFound), ("Bad Name", InvalidInput)],
    ids=["unknown", "malformed"],
)
def test_unknown_or_malformed_names(pki: Pki, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        pki.ca_revocation.revoke(name)


def test_a_pending_ca_has_nothing_to_revoke(pki: Pki) -> None:
    pki.hierarchy.create_intermediate_csr("waiting")
    with pytest.raises(Conflict, match="pending and has no certificate"):
        pki.ca_revocation.revoke("waiting")


def test_an_invalidity_date_in_the_future_is_refused(agents: Pki) -> None:
    with pytest.raises(InvalidInput, match="future"):
        agents.ca_revocation.revoke("agents", invalidity_date=NOW + dt.timedelta(days=1))
    assert agents.hierarchy.get("agents").status is CAStatus.ACTIVE


def test_with_the_root_key_offline_the_revocation_waits_for_the_crl(tmp_path: Path) -> None:
    from pkiforge.ca.hierarchy import InitOptions

    usb = tmp_path / "usb" / "root.key"
    usb.parent.mkdir()
    pki = make_pki(tmp_path / "home", options=InitOptions(root_key_location=str(usb)))
    try:
        before = ca_serial(pki, "services")
        done = pki.ca_revocation.revoke("services", R.ca_compromise)
        assert done.root_crl is None and done.root_crl_problem is not None
        assert "offline" in done.root_crl_problem
        assert pki.hierarchy.get("services").status is CAStatus.REVOKED  # recorded regardless
        pki.revocation.generate_crl("root", key_ref=str(usb))  # when the key is at hand
        assert root_crl(pki).get_revoked_certificate_by_serial_number(before) is not None
    finally:
        pki.close()


def test_a_ca_certificate_revoked_by_the_old_leaf_path_is_completed(agents: Pki) -> None:
    # a store where a CA certificate was revoked as a leaf: the certificate revoked, the CA active
    serial = ca_serial(agents, "agents")
    with agents.store.transaction() as tx:
        tx.certificates.revoke(serial, Revocation(R.key_compromise, NOW, None, "operator:cli"))
    done = agents.ca_revocation.revoke("agents", R.ca_compromise)
    assert done.ca.status is CAStatus.REVOKED
    assert done.certificate.revocation is not None
    assert done.certificate.revocation.reason is R.key_compromise  # the entry stays as listed


def test_the_root_stays_off_its_own_crl_whatever_the_store_says(pki: Pki) -> None:
    # a root certificate revoked through the old leaf path: the CRL builder leaves it out
    root = ca_serial(pki, "root")
    with pki.store.transaction() as tx:
        tx.certificates.revoke(root, Revocation(R.key_compromise, NOW, None, "operator:cli"))
    crl = x509.load_der_x509_crl(pki.revocation.generate_crl("root").der)
    assert crl.get_revoked_certificate_by_serial_number(root) is None


# --- another process sees the revocation -------------------------------------------------


def test_another_process_sees_the_revocation_at_its_next_check(agents: Pki) -> None:
    other = build_pki(make_settings(agents.settings.home), PASSPHRASE, FixedClock(NOW))
    now = [1000.0]
    other.ctx.monotonic = lambda: now[0]
    try:
        assert issue(other, "agents").issuer == "agents"  # its view of the CAs is cached
        agents.ca_revocation.revoke("agents")
        now[0] += other.ctx.ca_check_seconds / 2
        assert other.hierarchy.get("agents").status is CAStatus.ACTIVE  # until it checks
        now[0] += other.ctx.ca_check_seconds  # the check is due: a status changed, it reloads
        assert other.hierarchy.get("agents").status is CAStatus.REVOKED
        with pytest.raises(Conflict, match="CA 'agents' is revoked"):
            issue(other, "agents")
    finally:
        other.close()


def test_an_unchanged_store_keeps_the_cached_view(pki: Pki) -> None:
    now = [1000.0]
    pki.ctx.monotonic = lambda: now[0]
    first = pki.ctx.cas()
    now[0] += 10 * pki.ctx.ca_check_seconds
    assert pki.ctx.cas() is first  # checked, found the same, not read again


# --- openssl agrees -----------------------------------------------------------------------


def crl_serials(text: str) -> set[int]:
    """The entries' serials in `openssl crl -text` output."""
    return {int(m, 16) for m in re.findall(r"Serial Number: ([0-9A-Fa-f]+)", text)}


def test_openssl_crl_check_all_rejects_leaves_under_the_revoked_intermediate(
    agents: Pki, tmp_path: Path
) -> None:
    under_agents = issue(agents, "agents")
    under_services = issue(agents, "services")
    # the last CRL `agents` publishes: once revoked it signs nothing, CRLs included
    agents_crl = agents.revocation.generate_crl("agents")
    agents.ca_revocation.revoke("agents", R.ca_compromise)
    crls = write(
        tmp_path / "crls.pem",
        *(
            x509.load_der_x509_crl(der)
            for der in (
                agents.revocation.latest_crl("root").der,
                agents.revocation.generate_crl("services").der,
                agents_crl.der,
            )
        ),
    )
    root_der = tmp_path / "root.crl"
    root_der.write_bytes(agents.revocation.latest_crl("root").der)
    text = openssl("crl", "-inform", "DER", "-in", str(root_der), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    assert crl_serials(text.stdout) == {ca_serial(agents, "agents")}  # not the root itself

    root_cert = agents.hierarchy.get("root").certificate
    assert root_cert is not None
    root_pem = write(tmp_path / "root.pem", root_cert)

    def verify(record: CertificateRecord) -> tuple[int, str]:
        assert record.certificate is not None
        chain = write(tmp_path / f"{record.issuer}.pem", agents.hierarchy.chain(record.issuer)[0])
        leaf = write(tmp_path / f"{record.serial_hex}.pem", record.certificate)
        result = openssl(
            "verify", "-x509_strict", "-attime", attime(), "-crl_check_all",
            "-CAfile", str(root_pem), "-untrusted", str(chain), "-CRLfile", str(crls), str(leaf),
        )  # fmt: skip
        return result.returncode, result.stdout + result.stderr

    ok, ok_out = verify(under_services)
    assert ok == 0, ok_out
    bad, bad_out = verify(under_agents)
    assert bad != 0
    assert "error 23 at 1 depth lookup: certificate revoked" in bad_out, bad_out
