"""Issue 22's "Done means" for notifications, in one run: a certificate 31 days from expiry
gets one `certificate.expiring` per threshold at 30, 7 and 1 days (time from the injected
clock), none for a certificate a renewal superseded, each delivered to a real HTTP receiver
that verifies it with the `standardwebhooks` package, and one delivery survives a kill -9 of
the `pkiforge notifications deliver` process that was sending it."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from pkiforge.ca.events import DeliveryStatus, EventType
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.clock import FixedClock
from pkiforge.scheduler.jobs import EXPIRY_SCAN
from pkiforge.settings import load_settings
from pkiforge.wiring import Pki, build_pki, build_scheduler, notification_sender
from tests.ca.helpers import PASSPHRASE, csr_bytes
from tests.cli.conftest import console_script
from tests.notify.receiver import Receiver, receiving

TIMEOUT = 5  # seconds per attempt: a deliverer holds what it sends for 2 x 5 + 5 s


def _home(home: Path, receiver: Receiver) -> None:
    home.mkdir(parents=True)
    (home / "ops.secret").write_text(receiver.secret + "\n")
    config = {
        "ca": {"trust_domain": "example.internal", "root_key_type": "p256",
               "intermediate_key_type": "p256", "kdf_log2_n": 14},
        "notifications": {
            "timeout_seconds": TIMEOUT,
            "webhooks": [{"name": "ops", "url": receiver.url, "secret_file": "ops.secret"}],
        },
    }  # fmt: skip
    (home / "config.yaml").write_text(yaml.safe_dump(config))


def _deliver(pki: Pki) -> None:
    sender = notification_sender(pki)
    try:
        pki.notifications.deliver_due(sender)
    finally:
        sender.close()


@pytest.mark.slow
def test_thresholds_at_30_7_and_1_days_reach_a_verifying_receiver_across_a_kill_9(
    tmp_path: Path,
) -> None:
    # the injected clock runs 40 days behind the real one, so a deliverer in another process
    # (on the real clock) finds every recorded event due
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=40)
    clock = FixedClock(start)
    home = tmp_path / "home"
    with receiving() as box:
        _home(home, box)
        pki = build_pki(load_settings(home), PASSPHRASE, clock)
        try:
            pki.hierarchy.initialize(InitOptions())
            month = dt.timedelta(days=31)
            request = pki.certificates.request_from_csr(
                csr_bytes("p256"), service_id="web", validity=month
            )
            expiring = pki.certificates.issue(request)
            superseded = pki.certificates.issue(request)
            pki.certificates.renew(superseded.serial, validity=dt.timedelta(days=90))
            scheduler = build_scheduler(pki.settings, pki)

            def scan_and_deliver() -> None:
                scheduler.run_due(only=[EXPIRY_SCAN], force=True)
                _deliver(pki)

            scan_and_deliver()  # 31 days left: no threshold reached
            clock.advance(dt.timedelta(days=2))  # 29 days left
            scan_and_deliver()
            scan_and_deliver()  # the same threshold again: nothing new
            clock.advance(dt.timedelta(days=25))  # 4 days left
            scan_and_deliver()
            clock.advance(dt.timedelta(days=3, hours=12))  # half a day left
            scheduler.run_due(only=[EXPIRY_SCAN], force=True)  # recorded, not yet sent

            # a deliverer takes the 1-day event, sends it, and is killed before recording it
            box.hang = threading.Event()
            box.arrived.clear()  # set by the deliveries before
            env = {k: v for k, v in os.environ.items() if not k.startswith("PKIFORGE_")}
            env["PKIFORGE_CA_PASSPHRASE"] = PASSPHRASE.decode()
            deliverer = subprocess.Popen(
                [console_script(), "--home", str(home), "notifications", "deliver"],
                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                assert box.arrived.wait(60), "the deliverer never sent"
            finally:
                deliverer.send_signal(signal.SIGKILL)
                deliverer.wait(10)
                box.hang.set()
                box.hang = None
            [held] = [
                d for d in pki.notifications.list() if d.event.data.get("threshold_days") == 1
            ]
            assert held.status is DeliveryStatus.PENDING and held.attempts == 0
            # once the killed deliverer's hold has run out, the next one sends it again
            after_hold = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2 * TIMEOUT + 6)
            clock.advance(after_hold - clock.now())
            _deliver(pki)
            deliveries = pki.notifications.list()
        finally:
            pki.close()
    assert box.refused == 0  # every request verified with the standardwebhooks package
    assert {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    received = list(zip(box.ids, box.received, strict=True))
    kinds = [b["type"] for _, b in received]
    assert kinds.count(EventType.CERTIFICATE_RENEWED.value) == 1  # the renewal itself
    expiring_events = [(i, b) for i, b in received if b["type"] == "certificate.expiring"]
    # only the certificate no renewal superseded
    assert {b["data"]["serial"] for _, b in expiring_events} == {expiring.serial_hex}
    # one event per threshold; the 1-day one arrived twice (the kill), with one webhook-id
    by_id = {i: b["data"]["threshold_days"] for i, b in expiring_events}
    assert sorted(by_id.values()) == [1, 7, 30]
    ids = [i for i, _ in expiring_events]
    assert len(ids) == 4 and ids.count(ids[-1]) == 2 and by_id[ids[-1]] == 1
