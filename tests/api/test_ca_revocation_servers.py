"""A CA revoked while `pkiforge serve` runs: real TLS handshakes with leaves under it are
refused, and issuance from it stops, on the server that revoked it and on a replica that
learns of it only through the shared database (within 5 seconds)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.conftest import _empty_postgres

from .conftest import HTTPS_WHITELIST
from .helpers import make_csr
from .server import Home, Server, make_home, start_server, two_replicas

pytestmark = pytest.mark.slow
NOTICE_SECONDS = 5.0  # the bound the replicas must meet; polled, not asserted as a time
WHITELIST: dict[str, Any] = {
    "services": [
        *HTTPS_WHITELIST["services"],
        {"service_id": "ops", "allowed_operations": ["admin"]},
        {"service_id": "fleet", "allowed_operations": ["request", "renew", "download"]},
    ]
}
Cert = tuple[str, str]


def leaf(home: Home, service: str, issuer: str) -> Cert:
    """A client certificate for `service` from `issuer`: (cert path, key path)."""
    cert, key = home.path / f"{service}-{issuer}.pem", home.path / f"{service}-{issuer}.key"
    home.cli(
        "cert", "issue", "--cn", f"{service}.internal", "--service", service,
        "--issuer", issuer, "--key-out", str(key), "--out", str(cert), "--force",
    )  # fmt: skip
    return str(cert), str(key)


def prepare(path: Path, database_url: str | None = None) -> tuple[Home, dict[str, Cert]]:
    """A CA with a second intermediate, `agents`, made before any server starts (so that the
    servers' TLS trust includes it), and client certificates under both intermediates."""
    home = make_home(path, WHITELIST, database_url=database_url)
    home.cli("ca", "create-intermediate", "agents", "--key-type", "p256")
    certs = {
        "fleet": leaf(home, "fleet", "agents"),
        "billing": leaf(home, "billing", "services"),
        "ops": leaf(home, "ops", "services"),
    }
    return home, certs


def whoami(server: Server, cert: Cert) -> int:
    with server.client(cert) as c:  # a new connection: a new handshake each time
        return c.get("/api/v1/whoami").status_code


def issue_from_agents(server: Server, cert: Cert) -> tuple[int, str]:
    cn = "fleet.internal"
    with server.client(cert) as c:
        r = c.post(
            "/api/v1/certificates/request",
            json={"csr": make_csr(cn, [cn]), "service_id": "fleet", "issuer": "agents"},
        )
    return r.status_code, r.text


def eventually(check: Callable[[], bool]) -> bool:
    """Poll `check` for up to NOTICE_SECONDS."""
    deadline = time.monotonic() + NOTICE_SECONDS
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def root_crl_serials(server: Server) -> set[int]:
    with server.client() as c:
        crl = x509.load_der_x509_crl(c.get("/api/v1/crl/root").content)
    return {entry.serial_number for entry in crl}


def ca_serial(home: Home, name: str) -> int:
    cert = x509.load_pem_x509_certificate(home.cli("ca", "chain", name).stdout.encode())
    return cert.serial_number


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Cert]]]:
    """One server on SQLite."""
    home, certs = prepare(tmp_path_factory.mktemp("ca-revoke") / "home")
    server = start_server(home)
    yield server, certs
    server.stop()


def test_a_ca_revoked_from_the_cli_is_refused_by_the_running_server(
    single: tuple[Server, dict[str, Cert]],
) -> None:
    server, certs = single
    assert whoami(server, certs["fleet"]) == 200
    assert issue_from_agents(server, certs["ops"])[0] == 201

    # the CLI is another process: the server learns of it from the database
    done = server.home.cli("ca", "revoke", "agents", "--reason", "cACompromise")
    assert "Root CRL #" in done.stdout

    assert eventually(lambda: whoami(server, certs["fleet"]) == 401)
    status, text = issue_from_agents(server, certs["ops"])
    assert status == 409 and "CA 'agents' is revoked" in text
    assert whoami(server, certs["billing"]) == 200  # under `services`: still accepted
    serials = root_crl_serials(server)
    assert ca_serial(server.home, "agents") in serials
    assert ca_serial(server.home, "root") not in serials


@pytest.mark.postgres
def test_a_ca_revoked_on_one_replica_is_refused_by_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    _empty_postgres(postgres_url)  # the session database may hold another module's tables
    home, certs = prepare(tmp_path / "home", postgres_url)
    with two_replicas(home) as (a, b):
        # B has read the CAs (and cached them) before A revokes one
        assert whoami(b, certs["fleet"]) == 200
        assert issue_from_agents(b, certs["ops"])[0] == 201

        with a.client(certs["billing"]) as c:
            denied = c.post("/api/v1/ca/agents/revoke", json={"reason": "cACompromise"})
        assert denied.status_code == 403, denied.text
        with a.client(certs["ops"]) as c:
            done = c.post("/api/v1/ca/agents/revoke", json={"reason": "cACompromise"})
        assert done.status_code == 200, done.text
        assert done.json()["ca"]["status"] == "revoked"

        def b_refuses() -> bool:
            status, _ = issue_from_agents(b, certs["ops"])
            return status == 409 and whoami(b, certs["fleet"]) == 401

        assert eventually(b_refuses)
        assert "CA 'agents' is revoked" in issue_from_agents(b, certs["ops"])[1]
        assert whoami(a, certs["fleet"]) == 401
        assert whoami(b, certs["billing"]) == 200
        assert ca_serial(home, "agents") in root_crl_serials(b)
