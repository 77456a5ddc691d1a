"""A revocation answered by a server is on the CRL that every worker and replica serves within
5 s, and a burst of revocations costs a few CRL signatures, not one each. The CRLs are read
with `openssl crl`; the CRLs signed are counted in the `crls` table."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509

from pkiforge.clock import FixedClock
from tests.ca.helpers import csr_bytes
from tests.conftest import _empty_postgres

from .helpers import Api, make_csr
from .server import Home, Server, make_home, start_server, two_replicas

WITHIN = 5.0  # seconds from a revocation's answer until every server lists it
BURST = 20
WHITELIST: dict[str, Any] = {
    "services": [
        {
            "service_id": "revoker",
            "allowed_operations": ["request", "revoke"],
            "allowed_names": ["*.revoker.internal"],
        }
    ]
}


@dataclass(frozen=True)
class Listing:
    """What `openssl crl -text` shows of a CRL: its number and each serial's reason."""

    number: int
    reasons: dict[int, str]


def openssl_crl(der: bytes) -> Listing:
    text = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-noout", "-text"],
        input=der,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    number = re.search(r"X509v3 CRL Number: *\n\s*(\S+)", text)
    assert number is not None, text
    reasons: dict[int, str] = {}
    for entry in re.split(r"\n\s*Serial Number: ", text)[1:]:
        serial, _, rest = entry.partition("\n")
        reason = re.search(r"X509v3 CRL Reason Code: *\n\s*(.+)", rest)
        reasons[int(serial.strip(), 16)] = reason.group(1).strip() if reason else "unspecified"
    return Listing(int(number.group(1), 0), reasons)


def fetch_crl(server: Server) -> Listing:
    """The services CRL, on a new connection (so that any worker may answer)."""
    with server.client() as c:
        r = c.get("/api/v1/crl/services")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pkix-crl", r.text
    return openssl_crl(r.content)


def issue(server: Server, cert: tuple[str, str], n: int) -> list[int]:
    serials = []
    with server.client(cert) as c:
        for i in range(n):
            cn = f"n{i}-{time.monotonic_ns()}.revoker.internal"
            r = c.post("/api/v1/certificates/request", json={"csr": make_csr(cn, [cn])})
            assert r.status_code == 201, r.text
            serials.append(int(r.json()["serial"], 16))
    return serials


def revoke(c: httpx.Client, serial: int, reason: str) -> None:
    r = c.post(f"/api/v1/certificates/{serial:x}/revoke", json={"reason": reason})
    assert r.status_code == 200 and r.json()["status"] == "revoked", r.text


def wait_until_listed(servers: list[Server], serials: set[int], deadline: float) -> Listing:
    """Poll every server until each lists all `serials`, at most until `deadline`."""
    pending = list(servers)
    last: Listing | None = None
    while pending:
        last = fetch_crl(pending[0])
        if serials <= last.reasons.keys():
            pending.pop(0)
            continue
        assert time.monotonic() < deadline, (
            f"{pending[0].url} still serves CRL #{last.number} without "
            f"{sorted(f'{s:x}' for s in serials - last.reasons.keys())}"
        )
        time.sleep(0.1)
    assert last is not None
    return last


class Pollers:
    """Threads fetching the CRL from each server in a loop, as relying parties would: each
    fetch that finds the CRL due may sign one, so they race the servers at every due time."""

    def __init__(self, servers: list[Server]) -> None:
        self._stop = threading.Event()
        self.errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, args=(s,)) for s in servers]

    def _run(self, server: Server) -> None:
        while not self._stop.is_set():
            try:
                with server.client() as c:
                    r = c.get("/api/v1/crl/services")
                assert r.status_code == 200, r.text
            except BaseException as exc:  # reported by the test, not lost in the thread
                self.errors.append(exc)
                return

    def __enter__(self) -> Pollers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def check_crl_numbers(numbers: list[int]) -> None:
    """The CRLs in the order they were stored: numbered 1, 2, 3 ... without gaps."""
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def burst(servers: list[Server], cert: tuple[str, str], stored: Any) -> None:
    """Revoke BURST certificates from several clients at once, over all `servers`, while
    every server's CRL is fetched continuously: all are listed within WITHIN seconds of the
    last answer, and fewer than 5 CRLs were signed."""
    serials = issue(servers[0], cert, BURST)
    before = len(stored())
    senders = 4  # clients revoking at once, spread over the servers

    def send(k: int) -> None:
        with servers[k % len(servers)].client(cert) as c:
            for serial in serials[k::senders]:
                revoke(c, serial, "superseded")

    with Pollers(servers) as pollers, ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, range(senders)))
        deadline = time.monotonic() + WITHIN
        listing = wait_until_listed(servers, set(serials), deadline)
    assert not pollers.errors, pollers.errors
    assert all(listing.reasons[s] == "Superseded" for s in serials)
    numbers = stored()
    check_crl_numbers(numbers)
    assert len(numbers) - before < 5, f"{len(numbers) - before} CRLs for {BURST} revocations"


# --- in-process: what caches are told ------------------------------------------------------


async def test_a_crl_missing_revocations_is_not_to_be_cached(api: Api) -> None:
    clock = api.pki.ctx.clock
    assert isinstance(clock, FixedClock)
    fresh = await api.client.get("/api/v1/crl/services")
    assert fresh.headers["cache-control"] == "max-age=43200"  # half of the 24 h left
    pki = api.pki
    record = pki.certificates.issue(
        pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    )
    pki.revocation.revoke(record.serial, x509.ReasonFlags.key_compromise)
    missing = await api.client.get("/api/v1/crl/services")
    assert missing.content == fresh.content  # until revocations pause for the delay
    assert missing.headers["cache-control"] == "max-age=0"
    clock.advance(dt.timedelta(seconds=1))
    replaced = await api.client.get("/api/v1/crl/services")
    assert record.serial in openssl_crl(replaced.content).reasons
    assert replaced.headers["cache-control"] == "max-age=43200"


# --- one server, two workers on one SQLite file --------------------------------------------


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = make_home(tmp_path_factory.mktemp("crl-sqlite") / "home", WHITELIST)
    server = start_server(home, "crl", args=("--workers", "2"))
    yield server
    server.stop()


def sqlite_numbers(home: Home) -> list[int]:
    with sqlite3.connect(home.path / "pkiforge.db") as conn:
        rows = conn.execute("SELECT number FROM crls WHERE issuer = 'services' ORDER BY id")
        return [row[0] for row in rows]


def test_a_revocation_is_on_the_crl_within_seconds(sqlite_server: Server) -> None:
    cert = sqlite_server.home.client_cert("revoker", "x.revoker.internal")
    (serial,) = issue(sqlite_server, cert, 1)
    assert serial not in fetch_crl(sqlite_server).reasons
    with sqlite_server.client(cert) as c:
        revoke(c, serial, "keyCompromise")
    deadline = time.monotonic() + WITHIN
    listing = wait_until_listed([sqlite_server], {serial}, deadline)
    assert listing.reasons[serial] == "Key Compromise"
    for _ in range(6):  # and stays listed, whichever worker answers
        assert fetch_crl(sqlite_server).reasons[serial] == "Key Compromise"
    check_crl_numbers(sqlite_numbers(sqlite_server.home))


def test_a_burst_of_revocations_costs_a_few_crls(sqlite_server: Server) -> None:
    cert = sqlite_server.home.client_cert("revoker", "x.revoker.internal")
    burst([sqlite_server], cert, lambda: sqlite_numbers(sqlite_server.home))


# --- two replicas on one PostgreSQL database -----------------------------------------------


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[tuple[Server, Server]]:
    _empty_postgres(postgres_url)  # the session database may hold another module's tables
    home = make_home(
        tmp_path_factory.mktemp("crl-replicas") / "home", WHITELIST, None, postgres_url
    )
    with two_replicas(home) as pair:
        yield pair


def postgres_numbers(url: str) -> list[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT number FROM crls WHERE issuer = 'services' ORDER BY id")
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_revocation_on_one_replica_is_on_both_crls(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    cert = a.home.client_cert("revoker", "x.revoker.internal")
    (serial,) = issue(a, cert, 1)
    assert serial not in fetch_crl(a).reasons and serial not in fetch_crl(b).reasons
    with a.client(cert) as c:
        revoke(c, serial, "keyCompromise")
    deadline = time.monotonic() + WITHIN
    listing = wait_until_listed([b, a], {serial}, deadline)
    assert listing.reasons[serial] == "Key Compromise"
    assert fetch_crl(b).reasons[serial] == "Key Compromise"


@pytest.mark.postgres
def test_a_burst_over_both_replicas_costs_a_few_crls(
    replicas: tuple[Server, Server], postgres_url: str
) -> None:
    a, b = replicas
    cert = a.home.client_cert("revoker", "x.revoker.internal")
    burst([a, b], cert, lambda: postgres_numbers(postgres_url))
