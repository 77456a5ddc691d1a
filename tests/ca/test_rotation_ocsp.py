"""After a rotation, a process without CA keys (`publish serve`) answers OCSP for the new
generation at once: the rotation made the successor's delegated responder. openssl builds the
request and checks the answer."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.rotation import RotationService
from pkiforge.clock import FixedClock
from pkiforge.wiring import Pki, build_pki

from .helpers import PASSPHRASE, make_pki

CLOCK = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))  # openssl checks times by now


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Pki]:
    p = make_pki(tmp_path / "home", clock=CLOCK)
    yield p
    p.close()


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)


def new_generation_leaf(pki: Pki, tmp_path: Path) -> None:
    """Write the successor's certificate, the root's and a leaf the successor issued."""
    record = pki.certificates.issue(
        IssueRequest(
            "after.internal", public_key=ec.generate_private_key(ec.SECP256R1()).public_key()
        )
    )
    assert record.certificate is not None and record.issuer == "services.2"
    inter, root = pki.hierarchy.chain("services.2")
    for name, cert in (("inter", inter), ("root", root), ("leaf", record.certificate)):
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(Encoding.PEM))


def keyless_answer(pki: Pki, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """What a `publish serve`-like process (no CA key ever loaded) answers, checked by openssl."""
    made = openssl(
        "ocsp", "-issuer", "inter.pem", "-cert", "leaf.pem", "-no_nonce", "-reqout", "req.der",
        cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    keyless = build_pki(pki.settings, PASSPHRASE, CLOCK, ca_keys=False)
    try:
        (tmp_path / "resp.der").write_bytes(
            keyless.ocsp.respond((tmp_path / "req.der").read_bytes())
        )
    finally:
        keyless.close()
    return openssl(
        "ocsp", "-respin", "resp.der", "-issuer", "inter.pem", "-cert", "leaf.pem",
        "-CAfile", "root.pem", "-no_nonce", cwd=tmp_path,
    )  # fmt: skip


def test_publish_serve_answers_good_for_the_new_generation_after_a_rotation(
    pki: Pki, tmp_path: Path
) -> None:
    done = pki.rotation.rotate("services")
    assert done.successor.name == "services.2"
    new_generation_leaf(pki, tmp_path)
    checked = keyless_answer(pki, tmp_path)
    assert "leaf.pem: good" in checked.stdout, checked.stdout + checked.stderr
    assert "Response verify OK" in checked.stderr, checked.stderr


def test_without_the_responder_the_keyless_process_says_try_later(pki: Pki, tmp_path: Path) -> None:
    """The same rotation without making the responder (as before): proves the test above
    depends on it."""
    RotationService(pki.hierarchy).rotate("services")
    new_generation_leaf(pki, tmp_path)
    checked = keyless_answer(pki, tmp_path)
    assert "trylater" in (checked.stdout + checked.stderr).lower(), checked


def test_a_responder_that_cannot_be_made_leaves_the_rotation_done(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keyless = build_pki(pki.settings, PASSPHRASE, CLOCK, ca_keys=False)
    try:
        # the root key is here, the responder's CA key load is refused: logged, not raised
        rotation = RotationService(pki.hierarchy, keyless.ocsp.responders)
        with caplog.at_level(logging.WARNING, logger="pkiforge.ca"):
            done = rotation.rotate("services")
    finally:
        keyless.close()
    assert done.successor.name == "services.2"
    assert pki.ctx.issuing_ca("services").name == "services.2"
    assert "OCSP responder was not made" in caplog.text and "services.2" in caplog.text
