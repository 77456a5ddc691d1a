"""The agent against the real server: rotation under load, and riding out a server outage."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from pkiforge.client import Identity, client_ssl_context
from tests.agent.conftest import ROOT, PkiServer, agent_command, env, free_port, wait_for
from tests.agent.pairs import serial_of_pair

pytestmark = pytest.mark.slow
SERVICE = Path(__file__).with_name("service_app.py")
RENEWALS = 3


@dataclass
class Load:
    """A client that opens a new mTLS connection after another and notes the serial it sees."""

    port: int
    context: ssl.SSLContext
    reload_log: Path
    stop: threading.Event = field(default_factory=threading.Event)
    seen: list[tuple[int, str]] = field(default_factory=list)  # (reloads announced, serial)
    failures: list[str] = field(default_factory=list)

    def announced(self) -> list[str]:
        return self.reload_log.read_text().split() if self.reload_log.exists() else []

    def run(self) -> None:
        while not self.stop.is_set():
            before = len(self.announced())
            try:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                with raw, self.context.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    assert tls.recv(64).startswith(b"HTTP/1.0 200")
                    der = tls.getpeercert(binary_form=True)
                    assert der is not None
                    serial = format(x509.load_der_x509_certificate(der).serial_number, "x")
                self.seen.append((before, serial))
            except (OSError, AssertionError) as exc:
                self.failures.append(repr(exc))


def test_agent_rotates_a_live_service_without_a_failed_handshake(
    pki_server: PkiServer, tmp_path: Path
) -> None:
    identity = pki_server.enroll("svc-web", tmp_path / "web")
    first = format(identity.certificate().serial_number, "x")
    port, pid_file, reload_log = free_port(), tmp_path / "web.pid", tmp_path / "reloads"
    service = subprocess.Popen(
        [sys.executable, str(SERVICE), str(identity.cert), str(identity.key), str(identity.ca),
         str(port), str(pid_file), str(reload_log)],
        cwd=ROOT, env=env(),
    )  # fmt: skip
    # the client authenticates with a copy of the first pair (the agent replaces the originals)
    client_id = Identity(tmp_path / "client.pem", tmp_path / "client.key", identity.ca)
    client_id.cert.write_bytes(identity.cert.read_bytes())
    client_id.key.write_bytes(identity.key.read_bytes())
    load = Load(port, client_ssl_context(client_id), reload_log)
    agent = None
    try:
        wait_for(pid_file.exists, 20, "the service")
        worker = threading.Thread(target=load.run)
        worker.start()
        # 1-minute certificates backdated by a minute: renewing 54 s before expiry means every ~6 s
        agent = subprocess.Popen(
            agent_command(pki_server, identity, "--renew-before", "54s",
                          "--signal", "HUP", "--pid-file", str(pid_file)),
            cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(lambda: len(load.announced()) >= RENEWALS, 50, f"{RENEWALS} renewals")
        time.sleep(0.5)
    finally:
        load.stop.set()
        for proc in (agent, service):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
    worker.join(timeout=10)
    order = [first, *load.announced()]
    assert len(set(order)) == len(order) >= RENEWALS + 1
    assert load.failures == []
    assert len(load.seen) > 50
    for announced, serial in load.seen:
        assert order.index(serial) >= announced, "a connection after a reload saw an old serial"
    assert {s for _, s in load.seen} >= set(order[1:])  # every renewed certificate was served
    assert format(serial_of_pair(identity.cert, identity.key), "x") == order[-1]


def test_agent_retries_while_the_server_is_down(pki_server: PkiServer, tmp_path: Path) -> None:
    identity = pki_server.enroll("svc-batch", tmp_path / "batch")
    old = serial_of_pair(identity.cert, identity.key)
    pki_server.stop()
    log = tmp_path / "agent.log"
    with open(log, "w") as sink:
        agent = subprocess.Popen(
            agent_command(pki_server, identity, "--renew-before", "58s", "--max-backoff", "2s"),
            cwd=ROOT, env=env(), stderr=sink,
        )  # fmt: skip
    try:
        wait_for(lambda: log.read_text().count("failed") >= 3, 40, "three failed attempts")
        assert "cannot reach the PKI server" in log.read_text()
        assert serial_of_pair(identity.cert, identity.key) == old  # untouched meanwhile
        pki_server.start()
        wait_for(lambda: serial_of_pair(identity.cert, identity.key) != old, 40, "the renewal")
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        if pki_server.proc is None:
            pki_server.start()
    assert "renewed: now" in log.read_text()
    assert serial_of_pair(identity.cert.with_name("tls.pem.bak"),
                          identity.key.with_name("tls.key.bak")) == old  # fmt: skip


def test_agent_once_exits_zero_whether_or_not_it_renewed(
    pki_server: PkiServer, tmp_path: Path
) -> None:
    identity = pki_server.enroll("svc-cron", tmp_path / "cron")
    old = serial_of_pair(identity.cert, identity.key)
    marker = tmp_path / "ran"
    not_due = subprocess.run(
        agent_command(pki_server, identity, "--once", "--renew-before", "1s"),
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert not_due.returncode == 0 and "not due" in not_due.stderr
    assert serial_of_pair(identity.cert, identity.key) == old
    due = subprocess.run(
        agent_command(pki_server, identity, "--once", "--renew-before", "65s",
                      "--exec", f"touch {marker}"),
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # the certificate has at most 60 s left, so renewing 65 s before expiry is due now
    assert due.returncode == 0, due.stderr
    assert serial_of_pair(identity.cert, identity.key) != old and marker.exists()
