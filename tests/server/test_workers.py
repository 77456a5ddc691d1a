"""`pkiforge serve --workers N`: one listening socket, each connection handed to the worker
holding the fewest, a dead worker replaced, SIGTERM stopping them all.

Which process holds each connection is read from /proc (the kernel's view), not from us.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import NameOID

from pkiforge.server.workers import NOT_READY, _HandedServer, least_busy
from tests.api.conftest import HTTPS_WHITELIST
from tests.api.server import Server, make_home, start_server
from tests.conftest import data_file

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")


def _children(pid: int) -> set[int]:
    """The worker processes of supervisor `pid` (not multiprocessing's resource tracker)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status and b"spawn_main" in cmdline:
                out.add(int(entry.name))
    return out


def _owners(port: int, pids: set[int]) -> dict[int, int]:
    """How many established server-side connections on `port` each of `pids` holds."""
    return {pid: len(peers) for pid, peers in _peer_ports(port, pids).items()}


def _peer_ports(port: int, pids: set[int]) -> dict[int, set[int]]:
    """The client ports of the established connections on `port` that each of `pids` holds."""
    peers: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                peers[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
    held: dict[int, set[int]] = {}
    for pid in pids:
        held[pid] = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in peers:
                held[pid].add(peers[target[8:-1]])
    return held


def _open(server: Server, n: int) -> list[ssl.SSLSocket]:
    ctx = server.tls()
    conns = []
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        conns.append(conn)
    return conns


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server, _ = _two_workers(tmp_path_factory.mktemp("workers"))
    yield server
    server.stop()


def test_connections_are_spread_over_the_workers(workers: Server) -> None:
    pids = _children(workers.proc.pid)
    assert len(pids) == 2
    conns = _open(workers, 32)
    try:
        counts = _owners(workers.port, pids)
        assert sum(counts.values()) == 32
        # each connection goes to the worker holding the fewest: an even split, not the
        # luck of a hash (16 keep-alive clients once split 13 to 3 that way)
        assert sorted(counts.values()) == [16, 16], counts
    finally:
        for c in conns:
            c.close()


def test_new_connections_go_to_the_worker_that_holds_fewest(workers: Server) -> None:
    pids = _children(workers.proc.pid)
    time.sleep(0.3)  # the workers say what they hold every 0.1 s: let the last test's go
    conns = _open(workers, 8)
    try:
        held = _peer_ports(workers.port, pids)
        assert sorted(len(p) for p in held.values()) == [4, 4], held
        emptied = min(pids)
        for c in [c for c in conns if c.getsockname()[1] in held[emptied]]:
            c.close()
            conns.remove(c)
        deadline = time.monotonic() + 10
        while _owners(workers.port, pids)[emptied] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the workers say what they hold every 0.1 s
        conns += _open(workers, 4)
        assert _owners(workers.port, pids) == {emptied: 4, max(pids): 4}
    finally:
        for c in conns:
            c.close()


def test_a_client_that_fails_tls_does_not_hurt_its_worker(workers: Server) -> None:
    for payload in (b"", b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello"):
        with socket.create_connection(("127.0.0.1", workers.port), timeout=10) as raw:
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)
            raw.settimeout(10)
            with contextlib.suppress(OSError):
                raw.recv(4096)
    conns = _open(workers, 4)  # both workers still serve
    for c in conns:
        c.close()


def test_a_handed_over_connection_carries_the_verified_client_certificate(
    workers: Server,
) -> None:
    """curl, an independent TLS client, with and without a client certificate; each call is a
    new connection, handed to one worker or the other."""
    cert = workers.home.client_cert("billing", "billing.internal")
    for _ in range(4):
        status, text = workers.curl("/api/v1/whoami", cert=cert)
        assert status == 200, text
        assert json.loads(text)["service_id"] == "billing"
        anonymous, _ = workers.curl("/api/v1/whoami")
        assert anonymous == 401


def test_least_busy_counts_what_was_sent_and_not_yet_taken() -> None:
    assert least_busy([0, 0], [0, 0], [0, 0]) == [0, 1]
    assert least_busy([3, 1], [3, 1], [3, 1]) == [1, 0]
    # worker 1 said it holds 1 but has not yet taken the 3 sent since: it is the busier
    assert least_busy([2, 1], [2, 1], [2, 4]) == [0, 1]
    # a worker that took more than the supervisor counted (after a restart) is not negative
    assert least_busy([0, 2], [5, 2], [0, 2]) == [0, 1]
    # a worker still starting comes last, however busy the others are
    assert least_busy([NOT_READY, 9], [0, 9], [0, 9]) == [1, 0]
    assert least_busy([NOT_READY, NOT_READY], [0, 0], [3, 0]) == [1, 0]


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def _tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 (cert path, key path)."""
    key_pem = data_file("key-p256.pem")
    key = load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key_pem)
    return tmp_path / "cert.pem", tmp_path / "key.pem"


async def test_a_worker_never_counts_a_connection_twice(tmp_path: Path) -> None:
    """What a worker publishes, sampled at every turn of its event loop (a tick may fall on
    any of them), counts each connection once: while its handshake runs, while it is
    served, and not at all once it is closed or its handshake failed.

    It once counted both the handshake task and uvicorn's connection, until after the first
    response: a tick there told the supervisor one too many, and the next connections went
    to the other worker (the split test above failed 15 to 17 now and then).
    """
    cert, key = _tls_files(tmp_path)
    config = uvicorn.Config(
        _hello, ssl_certfile=str(cert), ssl_keyfile=str(key), lifespan="off", log_level="error"
    )
    config.load()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    loads = [NOT_READY, 0]
    worker = _HandedServer(config, theirs, loads, 0)
    worker.lifespan = config.lifespan_class(config)
    await worker.startup()
    assert loads == [0, 0]

    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def sample() -> None:
        worker._publish()
        seen.append(loads[0])
        sampler[0] = loop.call_soon(sample)

    sampler = [loop.call_soon(sample)]
    listener = socket.create_server(("127.0.0.1", 0))

    def hand_over() -> socket.socket:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with accepted:
            socket.send_fds(ours, [b"c"], [accepted.fileno()])
        return client

    async def until_held(n: int) -> None:
        for _ in range(500):
            if loads[0] == n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the worker never said it holds {n}: {loads}")

    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        reader, writer = await asyncio.open_connection(
            sock=hand_over(), ssl=ctx, server_hostname="127.0.0.1"
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await reader.readuntil(b"hello")).startswith(b"HTTP/1.1 200")
        assert loads == [1, 1]
        writer.close()
        await until_held(0)

        failed = hand_over()
        await until_held(1)  # its handshake waits for the client's hello
        failed.sendall(b"GET / HTTP/1.1\r\n\r\n")  # not TLS: the handshake fails
        await until_held(0)
        failed.close()
        assert loads[1] == 2
    finally:
        sampler[0].cancel()
        listener.close()
        await worker.shutdown()
        ours.close()
    assert max(seen) == 1, f"a connection was counted twice: {seen.count(2)} turns"
    assert seen.count(1) > 10  # the samples did see the connections


def test_a_dead_worker_is_replaced(workers: Server) -> None:
    before = _children(workers.proc.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    after: set[int] = set()
    while time.monotonic() < deadline:
        after = _children(workers.proc.pid)
        if len(after) == 2 and victim not in after:
            break
        time.sleep(0.2)
    assert victim not in after and len(after) == 2
    # every connection is answered again, whichever worker it lands on
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conns = _open(workers, 16)
            break
        except (OSError, AssertionError):
            time.sleep(0.3)
    else:
        pytest.fail("the replaced worker never answered")
    for c in conns:
        c.close()
    assert "restarting" in workers.log.read_text()


def _two_workers(tmp_path: Path) -> tuple[Server, set[int]]:
    """A fresh `serve --workers 2` and its worker pids, once both are up."""
    home = make_home(tmp_path / "home", HTTPS_WHITELIST)
    server = start_server(home, args=("--workers", "2"))
    deadline = time.monotonic() + 30
    while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = _children(server.proc.pid)
    assert len(pids) == 2
    return server, pids


def test_sigterm_stops_the_workers(tmp_path: Path) -> None:
    server, pids = _two_workers(tmp_path)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
        )


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    server, pids = _two_workers(tmp_path)
    server.proc.kill()  # no SIGTERM to pass on: the workers see their channel close
    server.proc.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.2)
    assert not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
