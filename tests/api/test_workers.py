"""`pkiforge serve --workers N`: a socket per worker (SO_REUSEPORT), connections spread over
the workers, a dead worker replaced, SIGTERM stopping them all.

Which process holds each connection is read from /proc (the kernel's view), not from us.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HTTPS_WHITELIST
from .server import Server, env, free_port, make_home, start_server

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


def _established_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    return inodes


def _owners(port: int, pids: set[int]) -> dict[int, int]:
    """How many established server-side connections on `port` each of `pids` holds."""
    inodes = _established_inodes(port)
    counts = {}
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts[pid] = held
    return counts


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
    home = make_home(tmp_path_factory.mktemp("workers") / "home", HTTPS_WHITELIST)
    server = start_server(home, args=("--workers", "2"))
    deadline = time.monotonic() + 30
    while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    yield server
    server.stop()


def test_connections_are_spread_over_the_workers(workers: Server) -> None:
    pids = _children(workers.proc.pid)
    assert len(pids) == 2
    conns = _open(workers, 32)
    try:
        counts = _owners(workers.port, pids)
        assert sum(counts.values()) == 32
        # the kernel hashes each connection to a worker: both get a share (all 32 on one
        # worker has probability 2**-31)
        assert all(n > 0 for n in counts.values()), counts
    finally:
        for c in conns:
            c.close()


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


def test_sigterm_stops_the_workers(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", HTTPS_WHITELIST)
    server = start_server(home, args=("--workers", "2"))
    deadline = time.monotonic() + 30
    while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = _children(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
        )


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", HTTPS_WHITELIST)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pkiforge.cli",
                "--home",
                str(home.path),
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
