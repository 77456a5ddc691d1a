"""`pkiforge serve --workers N`: N worker processes serving one listening socket (uvicorn's
multi-process mode with our TLS protocol), a dead worker replaced, SIGTERM stopping them all.

Which process holds which socket is read from /proc (the kernel's view), not from us.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import HTTPS_WHITELIST
from tests.api.server import Server, make_home, start_server

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


def _listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on `port` (state 0A: LISTEN)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                found.add(target[8:-1])
    return found


def test_the_workers_serve_one_shared_listening_socket(workers: Server) -> None:
    pids = _children(workers.proc.pid)
    assert len(pids) == 2
    listening = _listening_inodes(workers.port)
    assert len(listening) == 1  # one socket, bound once by `serve`, not one per worker
    for pid in pids:
        assert listening <= _socket_inodes(pid), f"worker {pid} does not hold the socket"
    conns = _open(workers, 8)  # keep-alive connections, each answered by one of them
    try:
        assert sum(_owners(workers.port, pids).values()) == 8
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


def test_each_connection_carries_the_verified_client_certificate(
    workers: Server,
) -> None:
    """curl, an independent TLS client, with and without a client certificate; each call is a
    new connection, served by one worker or the other."""
    cert = workers.home.client_cert("billing", "billing.internal")
    for _ in range(4):
        status, text = workers.curl("/api/v1/whoami", cert=cert)
        assert status == 200, text
        assert json.loads(text)["service_id"] == "billing"
        anonymous, _ = workers.curl("/api/v1/whoami")
        assert anonymous == 401


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
    assert "died" in workers.log.read_text()  # uvicorn's supervisor says what it replaced


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
    server.proc.kill()  # no SIGTERM to pass on: the workers see their parent gone
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
