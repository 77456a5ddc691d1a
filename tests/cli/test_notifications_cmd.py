"""`pkiforge notifications ...` through the real entry point, delivering to a real receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import PASSPHRASE, Pkiforge, console_script, make_runner
from tests.notify.receiver import Receiver, receiving

INVALID_INPUT, NOT_FOUND, CONFLICT, UNAVAILABLE = 3, 4, 5, 7


def _configure(home: Path, receiver: Receiver, timeout: float = 5) -> None:
    (home / "ops.secret").write_text(receiver.secret + "\n")
    config = home / "config.yaml"
    values = yaml.safe_load(config.read_text()) if config.exists() else {}
    values["notifications"] = {
        "timeout_seconds": timeout,
        "webhooks": [{"name": "ops", "url": receiver.url, "secret_file": "ops.secret"}],
    }
    config.write_text(yaml.safe_dump(values))


def _init(tmp_path: Path) -> Pkiforge:
    run = make_runner(tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    r = run("init", "--root-key-type", "p256", "--intermediate-key-type", "p256")
    assert r.code == 0, r.stderr
    return run


def _revoke_one(run: Pkiforge) -> str:
    made = run("cert", "issue", "--cn", "web.internal", "--key-out", "web.key", "--json")
    assert made.code == 0, made.stderr
    serial = str(json.loads(made.stdout)["serial"])
    r = run("cert", "revoke", serial, "--reason", "keyCompromise")
    assert r.code == 0, r.stderr
    return serial


def _deliveries(run: Pkiforge) -> list[dict[str, object]]:
    r = run("notifications", "list", "--json")
    assert r.code == 0, r.stderr
    listed: list[dict[str, object]] = json.loads(r.stdout)
    return listed


def test_a_revocation_reaches_the_receiver_signed(tmp_path: Path) -> None:
    run = _init(tmp_path)
    with receiving() as receiver:
        _configure(tmp_path / "D", receiver)
        serial = _revoke_one(run)
        [pending] = _deliveries(run)
        assert pending["status"] == "pending" and pending["type"] == "certificate.revoked"
        r = run("notifications", "deliver")
        assert r.code == 0, r.stderr
        assert "1 delivered" in r.stdout
    assert receiver.refused == 0
    [body] = receiver.received
    assert body["type"] == "certificate.revoked"
    assert body["data"]["reason"] == "keyCompromise"
    assert int(str(body["data"]["serial"]), 16) == int(serial, 16)
    [done] = _deliveries(run)
    assert done["status"] == "delivered" and done["attempts"] == 1
    assert receiver.secret not in run("config", "show").stdout


def test_a_refused_delivery_is_listed_failed_and_can_be_retried(tmp_path: Path) -> None:
    run = _init(tmp_path)
    with receiving(status=503) as receiver:
        _configure(tmp_path / "D", receiver)
        _revoke_one(run)
        r = run("notifications", "deliver")
        # a subscriber that refuses is a dependency unavailable (7), not a bug (1)
        assert r.code == UNAVAILABLE and "1 to retry" in r.stdout
        assert "answered HTTP 503" in r.stdout
    [listed] = _deliveries(run)
    assert listed["status"] == "pending" and listed["last_error"] == "answered HTTP 503"
    r = run("notifications", "retry")
    assert r.code == INVALID_INPUT and "--all-failed" in r.stderr
    r = run("notifications", "list", "--status", "lost")
    assert r.code == INVALID_INPUT and "pending, delivered or failed" in r.stderr


def test_retry_sends_a_pending_delivery_now_and_names_what_it_cannot(tmp_path: Path) -> None:
    run = _init(tmp_path)
    with receiving() as gone:
        _configure(tmp_path / "D", gone)
    # the receiver has stopped: nothing listens at its address any more
    _revoke_one(run)
    r = run("notifications", "deliver")
    assert r.code == UNAVAILABLE and "1 to retry" in r.stdout, r.stdout + r.stderr
    [listed] = _deliveries(run)
    ident = str(listed["id"])
    assert listed["status"] == "pending" and listed["attempts"] == 1  # next try in an hour
    with receiving(secret=gone.secret) as receiver:
        _configure(tmp_path / "D", receiver)
        assert "0 delivered" in run("notifications", "deliver").stdout  # not due yet
        r = run("notifications", "retry", ident)
        assert r.code == 0 and "1 pending delivery due now" in r.stdout, r.stderr
        r = run("notifications", "deliver")
        assert r.code == 0 and "1 delivered" in r.stdout, r.stdout
    assert len(receiver.received) == 1
    r = run("notifications", "retry", ident)
    assert r.code == CONFLICT and f"delivery {ident} was delivered already" in r.stderr
    r = run("notifications", "retry", "424242", ident)
    assert r.code == NOT_FOUND and "no delivery 424242" in r.stderr


@pytest.mark.slow
def test_a_deliverer_killed_mid_send_leaves_the_event_to_the_next_one(tmp_path: Path) -> None:
    """kill -9 between taking a delivery and recording it: once its hold ends, the next
    deliverer sends the same event (same webhook-id) and records it."""
    run = _init(tmp_path)
    home = tmp_path / "D"
    with receiving() as first:
        _configure(home, first, timeout=10)  # the kill comes first even on a loaded machine
        _revoke_one(run)
        first.hang = threading.Event()  # it takes the request and never answers in time
        env = {k: v for k, v in os.environ.items() if not k.startswith("PKIFORGE_")}
        env["PKIFORGE_CA_PASSPHRASE"] = PASSPHRASE
        hanging = subprocess.Popen(
            [console_script(), "--home", str(home), "notifications", "deliver"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert first.arrived.wait(60), "the deliverer never sent"
        finally:
            hanging.send_signal(signal.SIGKILL)
            hanging.wait(10)
            first.hang.set()
    [held] = _deliveries(run)
    assert held["status"] == "pending" and held["attempts"] == 0  # sent, never recorded
    with receiving(secret=first.secret) as second:
        _configure(home, second, timeout=10)
        r = run("notifications", "deliver")
        assert "0 delivered" in r.stdout  # still held by the killed deliverer
        deadline = time.monotonic() + 120  # the hold: 2 x 10 + 5 s
        while not second.received:
            assert time.monotonic() < deadline, "the held delivery was never taken again"
            time.sleep(1)
            run("notifications", "deliver")
    assert second.ids == first.ids  # the same event: receivers deduplicate on webhook-id
    [done] = _deliveries(run)
    assert done["status"] == "delivered"
