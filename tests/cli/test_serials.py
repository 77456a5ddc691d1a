"""Serials: `cert list` prints them whole, and every command takes a unique prefix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ca.helpers import PASSPHRASE, TRUST_DOMAIN, csr_bytes, make_pki

from .conftest import Pkiforge, make_runner

# the first two share 12 hex digits, the third only 4 with them
SERIALS = [
    0x1234_5678_9ABC_0000_0000_0000_0000_0000_0000_0001,
    0x1234_5678_9ABC_1111_0000_0000_0000_0000_0000_0002,
    0x1234_9999_0000_0000_0000_0000_0000_0000_0000_0003,
]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Pkiforge:
    work = tmp_path_factory.mktemp("serials")
    pki = make_pki(work / "home")
    try:
        drawn: Iterator[int] = iter(SERIALS)
        pki.ctx.serials = lambda: next(drawn)
        for name in ("p256", "p256-b", "p384"):
            request = pki.certificates.request_from_csr(csr_bytes(name), service_id="web")
            pki.certificates.issue(request)
    finally:
        pki.close()
    # the CLI reads the settings the PKI was made with from the file
    (work / "home" / "config.yaml").write_text(f"ca:\n  trust_domain: {TRUST_DOMAIN}\n")
    return make_runner(work / "home", work, {"PKIFORGE_CA_PASSPHRASE": PASSPHRASE.decode()})


@pytest.mark.parametrize("columns", ["80", "200"])
def test_list_prints_whole_serials_at_any_width(cli: Pkiforge, columns: str) -> None:
    r = cli("cert", "list", env={"COLUMNS": columns})
    assert r.code == 0, r.stderr
    assert "…" not in r.stdout
    for serial in SERIALS:
        assert format(serial, "x") in r.stdout


def test_show_takes_a_unique_prefix(cli: Pkiforge) -> None:
    r = cli("cert", "show", "12349999", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["serial"] == format(SERIALS[2], "x")
    r = cli("cert", "show", "123456789ABC1", "--pem")  # upper case, as openssl prints it
    assert r.code == 0 and r.stdout.startswith("-----BEGIN CERTIFICATE-----")


def test_the_leading_zero_openssl_prints_counts_as_a_typed_digit(cli: Pkiforge) -> None:
    """openssl prints whole octets: a serial of 39 hex digits starts with a 0 there."""
    r = cli("cert", "show", "01234999", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["serial"] == format(SERIALS[2], "x")
    r = cli("cert", "show", "0123499")  # seven digits typed: still too short
    assert r.code == 3 and "a prefix needs at least 8 hex digits" in r.stderr, r.stderr
    r = cli("cert", "show", "00123499")  # one padding zero, not two
    assert r.code == 3 and "a prefix needs at least 8 hex digits" in r.stderr, r.stderr


def test_an_ambiguous_prefix_says_how_many_match(cli: Pkiforge) -> None:
    for command in (["show"], ["revoke", "--reason", "superseded"], ["renew"]):
        r = cli("cert", command[0], "12345678", *command[1:])
        assert r.code == 3, (command, r.stderr)
        assert r.stderr.strip() == (
            "error: serial prefix 12345678 matches 2 certificates; give more digits"
        )


def test_too_short_a_prefix_is_invalid_input_and_an_unknown_one_not_found(cli: Pkiforge) -> None:
    for command in (["show"], ["revoke", "--reason", "superseded"], ["renew"], ["export"]):
        r = cli(
            "cert", command[0], "1234", *command[1:], *(["--out", "-"] * (command == ["export"]))
        )
        assert r.code == 3, (command, r.stderr)
        assert "a prefix needs at least 8 hex digits" in r.stderr
    r = cli("cert", "show", "abcdef0123")
    assert r.code == 4 and "no certificate with serial abcdef0123" in r.stderr


def test_export_renew_and_revoke_take_a_prefix(cli: Pkiforge, tmp_path: Path) -> None:
    target = tmp_path / "exported.pem"
    r = cli("cert", "export", "123456789abc0", "--out", str(target))
    assert r.code == 0, r.stderr
    assert target.read_text().startswith("-----BEGIN CERTIFICATE-----")

    r = cli("cert", "renew", "123456789abc0", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["renewed_from"] == format(SERIALS[0], "x")

    r = cli("cert", "revoke", "123456789abc1", "--reason", "superseded", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["serial"] == format(SERIALS[1], "x")
