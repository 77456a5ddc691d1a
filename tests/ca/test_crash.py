"""Record before sign: a crash between "serial stored" and "certificate stored" loses nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

import pkiforge.ca.issuance
from pkiforge.ca.models import CertificateQuery, CertStatus
from pkiforge.clock import FixedClock
from pkiforge.errors import Conflict
from pkiforge.store.db import SqlStore
from pkiforge.wiring import Pki

from .helpers import NOW, PASSPHRASE, csr_bytes, make_pki, snapshot

# Runs in a child process: wire the services like an edge would, then issue with
# `sign_leaf` (the name Issuance.issue calls) replaced by a SIGKILL, either
# instead of signing or right after signing, before the certificate is stored.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import pkiforge.ca.issuance as issuing
    from pkiforge.settings import CASettings, Settings
    from pkiforge.wiring import build_pki

    home, passphrase, mode = Path(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'pkiforge.db'}",
        ca=CASettings(trust_domain="example.internal", kdf_log2_n=14),
    )
    pki = build_pki(settings, passphrase)
    real_sign_leaf = issuing.sign_leaf

    def crash(*args, **kwargs):
        if mode == "after-sign":
            real_sign_leaf(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    issuing.sign_leaf = crash
    request = pki.certificates.request_from_csr(
        Path(sys.argv[4]).read_bytes(), service_id="crash"
    )
    pki.certificates.issue(request)
    print("not killed")
    """
)


@pytest.mark.parametrize("mode", ["instead-of-sign", "after-sign"])
def test_sigkill_between_serial_and_certificate_leaves_a_pending_row(
    pki: Pki, tmp_path: Path, mode: str
) -> None:
    home = pki.settings.home
    csr_file = tmp_path / "req.pem"
    csr_file.write_bytes(csr_bytes("p256"))
    before = snapshot(pki)
    with pki.store.transaction() as tx:
        known_before = {r.serial for r in tx.certificates.search(CertificateQuery(limit=1000))}
    pki.close()

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), PASSPHRASE.decode(), mode, str(csr_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert "not killed" not in child.stdout

    store = SqlStore.open(f"sqlite:///{home / 'pkiforge.db'}")
    try:
        with store.transaction() as tx:
            rows = tx.certificates.search(CertificateQuery(limit=1000))
            audit = list(tx.audit.iterate())
        new = [r for r in rows if r.serial not in known_before]
        assert len(new) == 1
        pending = new[0]
        assert pending.status is CertStatus.PENDING
        assert pending.service_id == "crash"
        assert pending.issuer == "services"
        assert "URI:spiffe://example.internal/crash" in pending.names
        assert 2**63 < pending.serial < 2**159
        assert pending.certificate is None and pending.fingerprint is None
        # no certificate exists that the store does not know about: nothing was returned,
        # written to disk or audited as issued, and every stored PEM has its own row
        assert all(a.subject != pending.serial_hex for a in audit)
        for r in rows:
            if r.certificate is not None:
                assert r.certificate.serial_number == r.serial
        after_rows = dict(before.rows, certificates=before.rows["certificates"] + 1)
        reopened = make_pki(home, init=False)
        try:
            after = snapshot(reopened)
            assert after.rows == after_rows
            assert after.files == before.files
            # a pending serial was never issued: it cannot be revoked or renewed
            with pytest.raises(Conflict, match="is pending; nothing was issued to revoke"):
                reopened.revocation.revoke(pending.serial, x509.ReasonFlags.superseded)
            with pytest.raises(Conflict, match="is pending; only an active certificate"):
                reopened.certificates.renew(pending.serial)
            # the store still works afterwards
            request = reopened.certificates.request_from_csr(csr_bytes("p256"), service_id="ok")
            assert reopened.certificates.issue(request).status is CertStatus.ACTIVE
        finally:
            reopened.close()
    finally:
        store.close()


def test_signing_error_marks_the_reservation_failed(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("HSM went away")

    monkeypatch.setattr(pkiforge.ca.issuance, "sign_leaf", broken)
    request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="broken")
    before = snapshot(pki)
    with pytest.raises(RuntimeError, match="HSM went away"):
        pki.certificates.issue(request)
    after = snapshot(pki)
    assert after.rows == dict(before.rows, certificates=before.rows["certificates"] + 1)
    failed = pki.certificates.search(CertificateQuery(status=CertStatus.FAILED))
    assert [r.service_id for r in failed] == ["broken"]
    assert failed[0].certificate is None


def test_serial_collision_draws_again(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "home", clock=FixedClock(NOW))
    try:
        taken = pki.certificates.issue(
            pki.certificates.request_from_csr(csr_bytes("p256"), service_id="a")
        ).serial
        draws = iter([taken, taken, taken + 2])
        pki.ctx.serials = lambda: next(draws)
        second = pki.certificates.issue(
            pki.certificates.request_from_csr(csr_bytes("p256"), service_id="b")
        )
        assert second.serial == taken + 2
    finally:
        pki.close()
