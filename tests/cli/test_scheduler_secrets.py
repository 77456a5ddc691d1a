"""`pkiforge scheduler` with a webhook whose secret_file is missing: only the notify job needs
the webhooks' secrets, so `status` and the other jobs work and the notify job alone fails,
naming the webhook (cron-driven CRL refreshes must not stop over a notification setting)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import PASSPHRASE, make_runner

INVALID_INPUT = 3


@pytest.mark.slow
def test_a_missing_webhook_secret_fails_the_notify_job_alone(tmp_path: Path) -> None:
    home = tmp_path / "D"
    run = make_runner(home, tmp_path, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE})
    made = run("init", "--root-key-type", "p256", "--intermediate-key-type", "p256")
    assert made.code == 0, made.stderr
    config = home / "config.yaml"
    values = yaml.safe_load(config.read_text()) if config.exists() else {}
    values["notifications"] = {
        "webhooks": [{"name": "ops", "url": "https://hooks.invalid/", "secret_file": "ops.secret"}]
    }
    config.write_text(yaml.safe_dump(values))

    status = run("scheduler", "status", "--json")
    assert status.code == 0, status.stderr
    assert "notify" in [row["job"] for row in json.loads(status.stdout)]

    crl = run("scheduler", "run", "--once", "--job", "crl-refresh", "--force", "--json")
    assert crl.code == 0, crl.stderr
    [report] = json.loads(crl.stdout)
    assert (report["job"], report["outcome"]) == ("crl-refresh", "ran")
    assert report["result"]["crls_signed"]  # the CRLs were signed, not just looked at

    every = run("scheduler", "run", "--once", "--force", "--json")
    assert every.code == INVALID_INPUT, every.stderr
    outcomes = {r["job"]: r["outcome"] for r in json.loads(every.stdout)}
    assert outcomes.pop("notify") == "failed"
    assert set(outcomes.values()) == {"ran"}, outcomes  # every other job still ran
    assert "job notify failed: webhook 'ops': cannot read its secret_file" in every.stderr

    # the failure is recorded where an operator looks for it
    after = {r["job"]: r for r in json.loads(run("scheduler", "status", "--json").stdout)}
    assert "webhook 'ops'" in after["notify"]["last_error"]
    assert after["crl-refresh"]["last_error"] is None
