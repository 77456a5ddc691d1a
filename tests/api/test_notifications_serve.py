"""`pkiforge serve` delivers notifications by itself (the scheduler's `notify` job), and a
kill -9 mid-send loses nothing."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.notify.receiver import Receiver, receiving

from .server import Home, make_home, start_server


def _config(receiver: Receiver, timeout: float) -> dict[str, object]:
    return {
        "scheduler": {"tick": "1s"},
        "notifications": {
            "poll_seconds": 1,
            "timeout_seconds": timeout,
            "webhooks": [{"name": "ops", "url": receiver.url, "secret_file": "ops.secret"}],
        },
    }


def _home(path: Path, receiver: Receiver, timeout: float) -> Home:
    home = make_home(path, {"services": []}, _config(receiver, timeout))
    (path / "ops.secret").write_text(receiver.secret)
    return home


def _revoke(home: Home) -> str:
    made = home.cli(
        "cert", "issue", "--cn", "web.internal", "--key-out", "web.key", "--force", "--json"
    )  # fmt: skip
    serial = str(json.loads(made.stdout)["serial"])
    home.cli("cert", "revoke", serial, "--reason", "superseded")
    return serial


def _status(home: Home) -> dict[str, object]:
    [delivery] = json.loads(home.cli("notifications", "list", "--json").stdout)
    assert isinstance(delivery, dict)
    return delivery


def _until(condition: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


def test_the_server_delivers_a_revocation_by_itself(tmp_path: Path) -> None:
    with receiving() as receiver:
        home = _home(tmp_path / "home", receiver, timeout=5)
        server = start_server(home)
        try:
            _revoke(home)
            assert receiver.arrived.wait(60), server.log.read_text()
            _until(lambda: _status(home)["status"] == "delivered")
        finally:
            server.stop()
    assert receiver.refused == 0
    assert receiver.received[0]["type"] == "certificate.revoked"


@pytest.mark.slow
def test_a_server_killed_between_event_and_delivery_delivers_after_restart(
    tmp_path: Path,
) -> None:
    with receiving() as receiver:
        # long enough that the kill below comes first even on a loaded machine; the hold
        # that the restarted server waits out is 2 x 10 + 5 s
        home = _home(tmp_path / "home", receiver, timeout=10)
        receiver.hang = threading.Event()  # takes the request and does not answer
        server = start_server(home)
        try:
            _revoke(home)
            assert receiver.arrived.wait(60), server.log.read_text()
        finally:
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
        receiver.hang.set()
        assert _status(home)["status"] == "pending"
        restarted = start_server(home, "restarted")
        try:
            # sent again once the dead server's hold ends, and recorded (a timed-out attempt
            # on a loaded machine would be retried only an hour later: the receiver decides)
            _until(lambda: len(receiver.ids) >= 2, 120)
            _until(lambda: _status(home)["status"] == "delivered", 120)
        finally:
            restarted.stop()
    assert len(set(receiver.ids)) == 1  # one event, sent at least once: same webhook-id
