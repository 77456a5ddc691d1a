"""`pkiforge service webhook ...` through the real entry point: the secret once, a delivery
to a real receiver that verifies it, clear errors for what cannot be done."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import yaml

from pkiforge.ca.registry_models import ServiceRecord
from pkiforge.settings import Settings
from pkiforge.wiring import open_store
from tests.cli.conftest import PASSPHRASE, Pkiforge, make_runner
from tests.notify.receiver import receiving

INVALID_INPUT, NOT_FOUND = 3, 4


def _init(tmp_path: Path) -> Pkiforge:
    run = make_runner(tmp_path / "D", tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    r = run("init", "--root-key-type", "p256", "--intermediate-key-type", "p256")
    assert r.code == 0, r.stderr
    home = tmp_path / "D"
    (home / "config.yaml").write_text(
        yaml.safe_dump({"notifications": {"allow_loopback_http": True, "timeout_seconds": 5}})
    )
    store = open_store(Settings(home=home))
    now = dt.datetime.now(dt.UTC)
    try:
        with store.transaction() as tx:  # no CLI registers services: the API does
            tx.services.add(ServiceRecord("web", "Web", now, now))
    finally:
        store.close()
    return run


def test_a_services_webhook_gets_its_revocation_signed_with_the_secret_shown_once(
    tmp_path: Path,
) -> None:
    run = _init(tmp_path)
    made = run("service", "webhook", "set", "web", "--url", "https://web.example/hooks")
    assert made.code == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("whsec_") and "not shown again" in made.stderr
    with receiving(secret=secret) as receiver:
        moved = run("service", "webhook", "set", "web", "--url", receiver.url)
        assert moved.code == 0 and moved.stdout == "" and "unchanged" in moved.stderr
        shown = run("service", "webhook", "show", "web", "--json")
        assert json.loads(shown.stdout)["url"] == receiver.url and secret not in shown.stdout
        issued = run(
            "cert", "issue", "--cn", "web.internal", "--service", "web", "--key-out", "w.key",
            "--json",
        )  # fmt: skip
        assert issued.code == 0, issued.stderr
        serial = json.loads(issued.stdout)["serial"]
        assert run("cert", "revoke", serial).code == 0
        delivered = run("notifications", "deliver")
        assert delivered.code == 0, delivered.stdout + delivered.stderr
    assert receiver.refused == 0
    [body] = receiver.received
    assert body["type"] == "certificate.revoked" and body["data"]["service"] == "web"
    listed = json.loads(run("notifications", "list", "--json").stdout)
    assert [d["endpoint"] for d in listed] == ["service:web"]
    assert run("service", "webhook", "clear", "web").code == 0
    gone = run("service", "webhook", "show", "web")
    assert gone.code == NOT_FOUND and "has no webhook" in gone.stderr


def test_what_cannot_be_a_webhook_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    run = _init(tmp_path)
    for args, code, says in (
        (("web", "--url", "http://web.example/h"), INVALID_INPUT, "must use https"),
        (("web", "--url", "https://u:hunter2@web.example/"), INVALID_INPUT, "user name"),
        (("nobody", "--url", "https://web.example/h"), NOT_FOUND, "no service 'nobody'"),
    ):
        r = run("service", "webhook", "set", *args)
        assert r.code == code, (args, r.stderr)
        assert says in r.stderr and "hunter2" not in r.stderr and r.stdout == ""
