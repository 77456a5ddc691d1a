"""Times and durations at the ends of what a datetime can hold: an answer or a one-line error
naming the option, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.cli.conftest import Pkiforge

# (id, option, value, exit code, message or None for success)
CASES = [
    ("within-past-9999", "--expiring-within", "999999999d", 3, "reaches past the year 9999"),
    ("within-too-long", "--expiring-within", "1000000000d", 3, "at most 999999999 days"),
    ("within-to-9999", "--expiring-within", "2900000d", 0, None),
    ("invalid-9999-west", "--invalidity-date", "9999-12-31T23:59:59-01:00", 3, "1-9999"),
    ("invalid-1-east", "--invalidity-date", "0001-01-01T03:34:38+19:25", 3, "1-9999"),
    ("invalid-9999-east", "--invalidity-date", "9999-12-31T23:59:59+23:59", 3, "future"),
    ("invalid-1-west", "--invalidity-date", "0001-01-01T00:00:00-23:59", 0, None),
    ("validity-too-long", "--validity", "1000000000d", 3, "at most 999999999 days"),
    ("validity-past-9999", "--validity", "999999999d", 3, "exceeds the 'service' profile"),
]


def command(pkiforge: Pkiforge, workdir: Path, option: str, value: str) -> list[str]:
    if option == "--expiring-within":
        return ["cert", "list", option, value, "--json"]
    if option == "--validity":
        return ["cert", "issue", "--cn", "v.internal", "--key-out", "v.key", option, value]
    made = pkiforge("cert", "issue", "--cn", "r.internal", "--key-out", "r.key", "--force",
                    "--json")  # fmt: skip
    assert made.code == 0, made.stderr
    return ["cert", "revoke", json.loads(made.stdout)["serial"], option, value]


@pytest.mark.parametrize(
    ("option", "value", "code", "message"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_extreme_times(
    pkiforge: Pkiforge, workdir: Path, option: str, value: str, code: int, message: str | None
) -> None:
    result = pkiforge(*command(pkiforge, workdir, option, value))
    assert result.code == code, result.stderr
    assert "Traceback" not in result.stderr
    if message is not None:
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert message in result.stderr


def test_intermediate_validity_past_9999_is_truncated_to_the_root(
    pkiforge: Pkiforge, workdir: Path
) -> None:
    made = pkiforge("ca", "create-intermediate", "far", "--key-type", "p256",
                    "--validity", "999999999d", "--json")  # fmt: skip
    assert made.code == 0, made.stderr
    far, root = x509.load_pem_x509_certificates(pkiforge("ca", "chain", "far").stdout.encode())
    assert far.not_valid_after_utc == root.not_valid_after_utc
