"""An `init` stopped half-way (Ctrl-C while a key is encrypted) is finished by the next one."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkiforge.ca.audit import verify_chain
from pkiforge.ca.hierarchy import InitOptions, InitState
from pkiforge.ca.models import CAStatus, CertificateQuery, CertStatus
from pkiforge.errors import Conflict
from pkiforge.wiring import Pki
from tests.cli.conftest import PASSPHRASE as CLI_PASSPHRASE
from tests.cli.conftest import make_runner

from .helpers import csr_bytes, make_pki
from .test_hierarchy import issue, openssl_verify


def interrupt_after_saving(pki: Pki, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the key store write `name`'s key, then stop as Ctrl-C would (once)."""
    real_save = pki.ctx.keys.save

    def save(
        key_name: str, key: CertificateIssuerPrivateKeyTypes, location: str | None = None
    ) -> str:
        ref = real_save(key_name, key, location)
        if key_name == name:
            monkeypatch.setattr(pki.ctx.keys, "save", real_save)
            raise KeyboardInterrupt
        return ref

    monkeypatch.setattr(pki.ctx.keys, "save", save)


def stopped_init(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    options: InitOptions | None = None,
    passphrase: bytes | None = None,
) -> Pki:
    """A PKI in `home` whose `init` was stopped right after writing `name`'s key."""
    pki = make_pki(home, init=False, **({"passphrase": passphrase} if passphrase else {}))
    interrupt_after_saving(pki, monkeypatch, name)
    with pytest.raises(KeyboardInterrupt):
        pki.hierarchy.initialize(options or InitOptions())
    return pki


def set_aside(directory: Path) -> list[Path]:
    return sorted(directory.glob("key.pem.interrupted-*"))


def audit_ok(pki: Pki) -> bool:
    with pki.store.transaction(readonly=True) as tx:
        return verify_chain(tx.audit.iterate()).ok


def certificates(pki: Pki, status: CertStatus) -> int:
    return pki.certificates.count(CertificateQuery(status=status))


def test_stopped_before_the_root_was_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    pki = stopped_init(home, monkeypatch, "root")
    try:
        assert pki.hierarchy.init_state() is InitState.ROOT_PENDING
        first_key = (home / "ca" / "root" / "key.pem").read_bytes()
        reserved = certificates(pki, CertStatus.PENDING)
        assert reserved == 1  # the serial the stopped run signed with stays accounted for

        steps: list[str] = []
        root, services = pki.hierarchy.initialize(InitOptions(), progress=steps.append)

        assert pki.hierarchy.init_state() is InitState.DONE
        assert root.status is CAStatus.ACTIVE and services.status is CAStatus.ACTIVE
        assert any("resuming" in s for s in steps)
        (aside,) = set_aside(home / "ca" / "root")
        assert aside.read_bytes() == first_key  # kept, not overwritten or deleted
        assert stat.S_IMODE(aside.stat().st_mode) == 0o600
        assert (home / "ca" / "root" / "key.pem").read_bytes() != first_key
        assert certificates(pki, CertStatus.PENDING) == reserved
        assert audit_ok(pki)
        openssl_verify(tmp_path, pki, "services", issue(pki))
    finally:
        pki.close()


def test_stopped_before_the_first_intermediate_was_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    pki = stopped_init(home, monkeypatch, "services")
    try:
        assert pki.hierarchy.init_state() is InitState.ROOT_ONLY
        root_before = pki.hierarchy.get("root")

        root, services = pki.hierarchy.initialize(InitOptions())

        assert root == root_before  # the root is kept, not made again
        assert services.parent == "root" and services.status is CAStatus.ACTIVE
        assert len(set_aside(home / "ca" / "services")) == 1
        assert audit_ok(pki)
        openssl_verify(tmp_path, pki, "services", issue(pki))
        with pytest.raises(Conflict, match="already initialised"):
            pki.hierarchy.initialize(InitOptions())
    finally:
        pki.close()


def test_an_offline_root_alone_needs_its_key_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline = tmp_path / "usb" / "root-key.pem"
    options = InitOptions(root_key_location=str(offline))
    pki = stopped_init(tmp_path / "home", monkeypatch, "services", options)
    try:
        with pytest.raises(Conflict, match="kept offline") as refused:
            pki.hierarchy.initialize(InitOptions())
        assert refused.value.data["field"] == "key"
        assert pki.hierarchy.init_state() is InitState.ROOT_ONLY  # nothing written
        _, services = pki.hierarchy.initialize(options)
        assert services.status is CAStatus.ACTIVE
        request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
        assert pki.certificates.issue(request).status is CertStatus.ACTIVE
    finally:
        pki.close()


def test_states(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "home", init=False)
    try:
        assert pki.hierarchy.init_state() is InitState.EMPTY
        pki.hierarchy.initialize(InitOptions())
        assert pki.hierarchy.init_state() is InitState.DONE
    finally:
        pki.close()


def test_pkiforge_run_finishes_an_init_that_was_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "D"
    stopped_init(home, monkeypatch, "root", passphrase=CLI_PASSPHRASE.encode()).close()
    run = make_runner(
        home,
        tmp_path,
        {"PKIFORGE_CA_PASSPHRASE": CLI_PASSPHRASE, "PKIFORGE_CA__INTERMEDIATE_KEY_TYPE": "p256"},
    )
    finished = run("run", "--no-serve")
    assert finished.code == 0, finished.stderr
    assert "resuming an interrupted init" in finished.stderr
    assert "moved to" in finished.stderr
    cas = {ca["name"]: ca["status"] for ca in json.loads(run("ca", "list", "--json").stdout)}
    assert cas == {"root": "active", "services": "active"}
    again = run("init")
    assert again.code != 0 and "already exists" in again.stderr
