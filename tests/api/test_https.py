"""Real HTTPS with real client certificates against `pkiforge serve` (one process, SQLite)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import ssl
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from pkiforge.client import PkiClient

from .helpers import make_csr
from .proxied import issued_from
from .server import Server, make_home

NAMES = ["billing.internal", "api.billing.internal"]


def test_service_gets_renews_and_revokes_its_own_certificate(https_server: Server) -> None:
    cert = https_server.home.client_cert("billing", "billing.internal")
    with https_server.client(cert) as c:
        assert c.get("/api/v1/whoami").json()["service_id"] == "billing"
        r = c.post(
            "/api/v1/services/register",
            json={"service_id": "billing", "service_name": "Billing", "names": NAMES},
        )
        assert r.status_code == 201, r.text
        issued = c.post("/api/v1/certificates/request", json={"csr": make_csr(NAMES[1], NAMES)})
        assert issued.status_code == 201, issued.text
        serial = issued.json()["serial"]
        renewed = c.post(f"/api/v1/certificates/{serial}/renew", json={"validity_days": 30})
        assert renewed.status_code == 201 and renewed.json()["renewed_from"] == serial
        revoked = c.request(
            "DELETE", f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"}
        )
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        check = c.get(f"/api/v1/crl/check/{serial}").json()
        assert check["revoked"] is True and check["reason"] == "superseded"
        service = c.get("/api/v1/services/billing").json()
        assert service["last_seen"] is not None
        assert service["certificate_serial"] == renewed.json()["serial"]


def test_curl_with_a_client_certificate(https_server: Server, tmp_path: Path) -> None:
    cert, key = https_server.home.client_cert("billing", "billing.internal")
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"csr": make_csr("billing.internal", ["billing.internal"])}))
    with https_server.client((cert, key)) as c:  # idempotent: the name may be registered
        c.post(
            "/api/v1/services/register",
            json={"service_id": "billing", "service_name": "Billing", "names": NAMES},
        )
    status, text = https_server.curl(
        "/api/v1/certificates/request",
        *("-H", "content-type: application/json", "--data-binary", f"@{body}"),
        cert=(cert, key),
    )
    assert status == 201, text
    assert json.loads(text)["service_id"] == "billing"


def test_another_services_name_is_refused(https_server: Server) -> None:
    billing = https_server.home.client_cert("billing", "billing.internal")
    orders = https_server.home.client_cert("orders", "orders.internal")
    with https_server.client(billing) as c:
        c.post(
            "/api/v1/services/register",
            json={"service_id": "billing", "service_name": "Billing", "names": NAMES},
        )
    with https_server.client(orders) as c:
        r = c.post(
            "/api/v1/certificates/request",
            json={"csr": make_csr("billing.internal", ["billing.internal"])},
        )
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert "DNS:billing.internal" in r.json()["detail"]


def test_no_certificate_is_refused_with_401(https_server: Server) -> None:
    with https_server.client() as c:
        r = c.post("/api/v1/certificates/request", json={"csr": make_csr("orders.internal")})
        assert c.get("/api/v1/ca/root").status_code == 200  # public reads need no certificate
    assert r.status_code == 401 and r.json()["reason"] == "no-cert"
    assert r.headers["www-authenticate"].startswith("Mutual-TLS")


def test_revoked_certificate_is_refused_with_401(https_server: Server) -> None:
    cert, key = https_server.home.client_cert("orders2", "orders2.internal")
    with https_server.client((cert, key)) as c:
        assert c.get("/api/v1/whoami").status_code == 200
        serial = c.get("/api/v1/whoami").json()["serial"]
    https_server.home.cli("cert", "revoke", serial, "--reason", "keyCompromise")
    with https_server.client((cert, key)) as c:
        r = c.get("/api/v1/whoami")
    assert r.status_code == 401 and r.json()["reason"] == "revoked"


def test_certificate_from_another_ca_fails_the_handshake(
    https_server: Server, tmp_path: Path
) -> None:
    other = make_home(tmp_path / "other", {"services": []})
    cert = other.client_cert("billing", "billing.internal")  # same service id, wrong CA
    # the server verifies a presented certificate during the handshake (CERT_OPTIONAL), so
    # OpenSSL rejects it with an alert before any HTTP is spoken: no 401 can be sent, and
    # the alert says why (tests/server/test_handshake_alerts.py has every kind).
    # TLS 1.3: the client has finished its side and sent its request; it reads the alert.
    with (
        https_server.client(cert) as c,
        pytest.raises(httpx.ReadError, match="alert unknown ca"),
    ):
        c.get("/api/v1/whoami")
    # TLS 1.2: the handshake itself fails with the alert
    tls12 = https_server.tls(cert)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        httpx.Client(base_url=https_server.url, verify=tls12) as c,
        pytest.raises(httpx.ConnectError, match="alert unknown ca"),
    ):
        c.get("/api/v1/whoami")
    control = https_server.tls()  # the same TLS 1.2 client without the foreign certificate
    control.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(base_url=https_server.url, verify=control) as c:
        assert c.get("/healthz").status_code == 200


def test_enrollment_token_works_once(https_server: Server) -> None:
    token = json.loads(
        https_server.home.cli("token", "create", "--service", "enrollee", "--ttl", "10m",
                              "--json").stdout
    )["token"]  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"}
    csr = make_csr("enrollee.internal", ["enrollee.internal"])
    with https_server.client() as c:  # no client certificate: the token is the credential
        first = c.post("/api/v1/certificates/request", headers=auth, json={"csr": csr})
        second = c.post("/api/v1/certificates/request", headers=auth, json={"csr": csr})
    assert first.status_code == 201, first.text
    assert first.json()["service_id"] == "enrollee"
    assert second.status_code == 401 and second.json()["reason"] == "token-used"
    listed = json.loads(https_server.home.cli("token", "list", "--json").stdout)
    assert any(t["status"] == "used" and t["certificate_serial"] for t in listed)


def test_forwarded_client_certificate_only_from_a_trusted_proxy(https_server: Server) -> None:
    cert, _ = https_server.home.client_cert("orders", "orders.internal")
    header = {"x-forwarded-client-cert": quote(Path(cert).read_text())}
    with https_server.client() as proxy:  # 127.0.0.1: configured in server.trusted_proxies
        trusted = proxy.get("/api/v1/whoami", headers=header)
    untrusted_transport = httpx.HTTPTransport(verify=https_server.tls(), local_address="127.0.0.2")
    with httpx.Client(base_url=https_server.url, transport=untrusted_transport) as other:
        ignored = other.get("/api/v1/whoami", headers=header)
    assert trusted.status_code == 200 and trusted.json()["service_id"] == "orders"
    assert ignored.status_code == 401 and ignored.json()["reason"] == "no-cert"


def test_the_server_checkpoints_its_wal_between_requests(
    https_server: Server, tmp_path: Path
) -> None:
    """What was issued reaches the database file itself within seconds, while the server runs
    with its connections open: its own checkpointer copied it, not a closing connection or a
    1000-page WAL."""
    cert = https_server.home.client_cert("orders2", "orders2.internal")
    with https_server.client(cert) as c:
        c.post(  # idempotent: the name may be registered
            "/api/v1/services/register",
            json={"service_id": "orders2", "service_name": "Orders", "names": ["orders2.internal"]},
        )
        issued = c.post(
            "/api/v1/certificates/request",
            json={"csr": make_csr("orders2.internal", ["orders2.internal"])},
        )
    assert issued.status_code == 201, issued.text
    fingerprint = issued.json()["fingerprint_sha256"]
    database = https_server.home.path / "pkiforge.db"
    deadline, found = time.monotonic() + 10, 0
    while not found and time.monotonic() < deadline:
        time.sleep(0.2)
        copy = tmp_path / "file-only.db"
        shutil.copyfile(database, copy)  # the database file alone, without its WAL
        conn = sqlite3.connect(f"file:{copy}?immutable=1", uri=True)
        try:
            found = conn.execute(
                "SELECT count(*) FROM certificates WHERE fingerprint_sha256 = ?", (fingerprint,)
            ).fetchone()[0]
        except sqlite3.DatabaseError:  # copied while a checkpoint wrote to it: copy again
            continue
        finally:
            conn.close()
    assert found == 1


@pytest.mark.parametrize(
    ("source", "forwarded", "audited"),
    [
        ("127.0.0.1", "198.51.100.1, 203.0.113.60", "203.0.113.60"),  # the proxy's entry
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.2", "203.0.113.61", "127.0.0.2"),  # not a trusted proxy: ignored
    ],
    ids=["trusted-proxy", "trusted-proxy-without-header", "untrusted"],
)
def test_the_client_address_a_trusted_proxy_forwards(
    https_server: Server, source: str, forwarded: str | None, audited: str
) -> None:
    cert = https_server.home.client_cert("burst", "x.burst.internal")
    cn = f"fwd-{source}-{forwarded is not None}.burst.internal".replace(".0.0.", "-").lower()
    transport = httpx.HTTPTransport(verify=https_server.tls(cert), local_address=source)
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    with httpx.Client(base_url=https_server.url, transport=transport) as c:
        issued = c.post(
            "/api/v1/certificates/request", json={"csr": make_csr(cn, [cn])}, headers=headers
        )
    assert issued.status_code == 201, issued.text
    assert issued_from(https_server.home, cn) == audited


def test_a_trusted_proxys_malformed_client_address_is_refused(https_server: Server) -> None:
    cert = https_server.home.client_cert("burst", "x.burst.internal")
    with https_server.client(cert) as c:  # from 127.0.0.1, a trusted proxy
        r = c.post(
            "/api/v1/certificates/request",
            json={"csr": make_csr("bad.burst.internal", ["bad.burst.internal"])},
            headers={"x-forwarded-for": "203.0.113.1, not-an-address"},
        )
    assert r.status_code == 400 and r.json()["field"] == "x-forwarded-for", r.text


def test_the_renewal_policy_is_served_and_the_client_reads_it(https_server: Server) -> None:
    """rotation_policy.renew_before_expiry_days, as curl and PkiClient (the agent's default
    margin: tests/agent/test_agent.py) read it from a running server."""
    status, body = https_server.curl("/api/v1/renewal-policy")
    assert status == 200
    assert json.loads(body) == {"renew_before_expiry_days": 30, "notification_days": [30, 7, 1]}
    with PkiClient(https_server.url, verify=https_server.tls()) as client:
        assert client.renewal_policy().renew_before == dt.timedelta(days=30)
