"""lego (Debian's, an independent ACME client) against `pkiforge serve`: an EAB account gets a
certificate over http-01 that `openssl verify` accepts, is refused another service's name
with `rejectedIdentifier`, and revokes its certificate (then OCSP says revoked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.server import Home, Server, free_port, make_home, start_server

pytestmark = pytest.mark.slow

WHITELIST = {
    "services": [
        {
            "service_id": "web",
            "allowed_operations": ["request", "revoke", "download"],
            "allowed_names": ["*.web.internal"],
        },
        {
            "service_id": "billing",
            "allowed_operations": ["request"],
            "allowed_names": ["*.billing.internal"],
        },
    ]
}


@dataclass
class Acme:
    home: Home
    server: Server
    web_port: int  # where lego's own http-01 server listens; acme.resolve points names there
    work: Path

    def lego(self, kid: str, hmac: str, *args: str) -> subprocess.CompletedProcess[str]:
        path = shutil.which("lego")
        if path is None:
            pytest.fail("lego is missing: run scripts/system-tools.sh (Debian's lego)")
        return subprocess.run(
            [path, "--server", f"{self.server.url}/acme/directory", "--accept-tos",
             "--email", "ops@web.internal", "--eab", "--kid", kid, "--hmac", hmac,
             "--path", str(self.work / "lego"), "--http",
             "--http.port", f"127.0.0.1:{self.web_port}", *args],
            env={**os.environ, "LEGO_CA_CERTIFICATES": str(self.home.root)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acme]:
    work = tmp_path_factory.mktemp("acme")
    web = free_port()
    names = ("a.web.internal", "b.web.internal", "a.billing.internal")
    config = {
        "acme": {
            "enabled": True,
            "allow_loopback": True,  # lego's challenge server is on 127.0.0.1
            "resolve": {n: f"127.0.0.1:{web}" for n in names},
        }
    }
    home = make_home(work / "home", WHITELIST, config)
    server = start_server(home)
    yield Acme(home, server, web, work)
    server.stop()


def eab(acme: Acme, service: str) -> tuple[str, str]:
    made = json.loads(acme.home.cli("acme", "eab", "create", "--service", service, "--json").stdout)
    assert made["service_id"] == service
    return made["kid"], made["hmac_key"]


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)


def test_lego_orders_verifies_is_refused_and_revokes(acme: Acme) -> None:
    kid, hmac = eab(acme, "web")
    got = acme.lego(kid, hmac, "--domains", "a.web.internal", "--domains", "b.web.internal", "run")
    assert got.returncode == 0, got.stderr
    certs = acme.work / "lego" / "certificates"
    # copies: lego archives its files when it revokes
    leaf, issuer = acme.work / "leaf.pem", acme.work / "issuer.pem"
    shutil.copy(certs / "a.web.internal.crt", leaf)
    shutil.copy(certs / "a.web.internal.issuer.crt", issuer)
    verified = openssl("verify", "-CAfile", str(acme.home.root), "-untrusted", str(issuer),
                       "-purpose", "sslserver", str(leaf), cwd=acme.work)  # fmt: skip
    assert verified.returncode == 0 and ": OK" in verified.stdout, verified.stderr
    names = openssl("x509", "-in", str(leaf), "-noout", "-ext", "subjectAltName", cwd=acme.work)
    assert "DNS:a.web.internal" in names.stdout and "DNS:b.web.internal" in names.stdout

    # the account is bound to service web: billing's name is refused, naming the problem
    refused = acme.lego(kid, hmac, "--domains", "a.billing.internal", "run")
    assert refused.returncode != 0
    assert "urn:ietf:params:acme:error:rejectedIdentifier" in refused.stderr, refused.stderr
    assert not (certs / "a.billing.internal.crt").exists()

    # revoked by the account key; OCSP (checked by openssl) then says revoked
    revoked = acme.lego(kid, hmac, "--domains", "a.web.internal", "revoke")
    assert revoked.returncode == 0, revoked.stderr
    request = openssl("ocsp", "-issuer", str(issuer), "-cert", str(leaf), "-reqout", "req.der",
                      "-no_nonce", cwd=acme.work)  # fmt: skip
    assert request.returncode == 0, request.stderr
    with acme.server.client() as client:
        answer = client.post(
            "/api/v1/ocsp",
            content=(acme.work / "req.der").read_bytes(),
            headers={"content-type": "application/ocsp-request"},
        )
    assert answer.status_code == 200
    (acme.work / "resp.der").write_bytes(answer.content)
    status = openssl("ocsp", "-no_nonce", "-respin", "resp.der", "-issuer", str(issuer),
                     "-cert", str(leaf), "-CAfile", str(acme.home.root), "-VAfile", str(issuer),
                     cwd=acme.work)  # fmt: skip
    assert "Response verify OK" in status.stderr, status.stderr
    assert ": revoked" in status.stdout, status.stdout

    # the audit trail has the binding key and the account, and its chain still verifies
    audit = json.loads(acme.home.cli("audit", "list", "--json", "--limit", "1000").stdout)
    actions = {entry["action"] for entry in audit}
    assert {"acme.eab.create", "acme.account.create", "cert.issue", "cert.revoke"} <= actions
    acme.home.cli("audit", "verify")
