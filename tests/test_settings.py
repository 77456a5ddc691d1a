"""Settings: defaults, config.yaml, PKIFORGE_* environment overrides, clear errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pkiforge.settings import CONFIG_FILE, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for key in list(os.environ):
        if key.startswith("PKIFORGE_"):
            monkeypatch.delenv(key)
    yield


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / CONFIG_FILE).write_text(text, encoding="utf-8")


def test_defaults_without_a_file(tmp_path: Path) -> None:
    s = load_settings(tmp_path)
    assert s.home == tmp_path
    assert s.ca.trust_domain == "pkiforge.internal"
    assert s.ca.root_key_type == "rsa4096"
    assert s.ca.kdf_log2_n == 15
    assert set(s.profiles) == {"server", "client", "service"}
    assert s.profiles["server"].allow_wildcards is True
    assert s.profiles["service"].allow_wildcards is False
    assert s.profiles["server"].max_validity == dt.timedelta(days=397)
    assert s.effective_database_url == f"sqlite:///{(tmp_path / 'pkiforge.db').resolve()}"


def test_file_values_and_durations(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
ca:
  trust_domain: corp.internal
  backdate: 5m
  root_validity: 7300d
crl:
  next_update: 12h
urls:
  crl: http://pki.corp.internal/{issuer}.crl
profiles:
  web:
    ekus: [serverAuth]
    default_validity: 30d
    max_validity: 90d
""",
    )
    s = load_settings(tmp_path)
    assert s.ca.trust_domain == "corp.internal"
    assert s.ca.backdate == dt.timedelta(minutes=5)
    assert s.ca.root_validity == dt.timedelta(days=7300)
    assert s.crl.next_update == dt.timedelta(hours=12)
    assert s.urls.crl == "http://pki.corp.internal/{issuer}.crl"
    assert set(s.profiles) == {"web"}  # a profiles section replaces the defaults
    assert s.profiles["web"].max_validity == dt.timedelta(days=90)


def test_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, "ca:\n  trust_domain: file.internal\n  organization: FileOrg\n")
    monkeypatch.setenv("PKIFORGE_CA__TRUST_DOMAIN", "env.internal")
    monkeypatch.setenv("PKIFORGE_CRL__NEXT_UPDATE", "2h")
    s = load_settings(tmp_path)
    assert s.ca.trust_domain == "env.internal"
    assert s.ca.organization == "FileOrg"  # untouched keys of the section stay
    assert s.crl.next_update == dt.timedelta(hours=2)


def test_env_equal_to_the_default_still_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "ca:\n  trust_domain: file.internal\n")
    monkeypatch.setenv("PKIFORGE_CA__TRUST_DOMAIN", "pkiforge.internal")
    assert load_settings(tmp_path).ca.trust_domain == "pkiforge.internal"


def test_explicit_overrides_and_home_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, "home: /elsewhere\ndatabase_url: sqlite:///file.db\n")
    monkeypatch.setenv("PKIFORGE_HOME", "/from-env")
    s = load_settings(tmp_path, database_url="postgresql://u:secret@db/pki")
    assert s.home == tmp_path
    assert s.database_url == "postgresql://u:secret@db/pki"
    assert s.public_dict()["database_url"] == "postgresql://u:***@db/pki"


def test_config_show_uses_the_names_the_file_takes(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "notifications:\n  email:\n    host: smtp.internal\n    from: pki@internal\n"
        "    to: [ops@internal]\n",
    )
    shown = load_settings(tmp_path).public_dict()
    assert shown["notifications"]["email"]["from"] == "pki@internal"
    assert "sender" not in shown["notifications"]["email"]
    (tmp_path / "again").mkdir()
    write_config(tmp_path / "again", yaml.safe_dump({"notifications": shown["notifications"]}))
    assert load_settings(tmp_path / "again").notifications == load_settings(tmp_path).notifications


@pytest.mark.parametrize(
    ("file", "env", "override", "winner"),
    [
        (None, None, None, "default"),
        ("file", None, None, "file"),
        (None, "env", None, "env"),
        (None, None, "override", "override"),
        ("file", "env", None, "env"),
        ("file", None, "override", "override"),
        (None, "env", "override", "override"),
        ("file", "env", "override", "override"),
    ],
)
def test_each_source_wins_over_the_ones_before_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file: str | None,
    env: str | None,
    override: str | None,
    winner: str,
) -> None:
    """defaults < config file < environment < explicit overrides (command-line options)."""
    urls = {"file": "sqlite:///file.db", "env": "sqlite:///env.db", "override": "sqlite:///o.db"}
    ports = {"default": 8443, "file": 1001, "env": 1002, "override": 1003}
    if file:
        write_config(tmp_path, f"database_url: {urls[file]}\nserver:\n  port: {ports[file]}\n")
    if env:
        monkeypatch.setenv("PKIFORGE_DATABASE_URL", urls[env])
        monkeypatch.setenv("PKIFORGE_SERVER__PORT", str(ports[env]))
    overrides: dict[str, object] = {}
    if override:
        overrides = {"database_url": urls[override], "server": {"port": ports[override]}}
    s = load_settings(tmp_path, **overrides)
    assert s.database_url == urls.get(winner)
    assert s.server.port == ports[winner]


def test_a_nested_override_keeps_the_other_keys_of_its_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "server:\n  host: 10.0.0.1\n")
    monkeypatch.setenv("PKIFORGE_SERVER__WORKERS", "3")
    s = load_settings(tmp_path, server={"port": 1003})
    assert (s.server.host, s.server.workers, s.server.port) == ("10.0.0.1", 3, 1003)


def test_a_bad_override_is_named_as_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKIFORGE_SERVER__PORT", "1002")
    with pytest.raises(ValueError) as info:
        load_settings(tmp_path, server={"port": 70000})
    assert str(info.value).startswith("server.port: Input should be less")
    assert str(info.value).endswith("(from the command line)")
    assert "PKIFORGE_SERVER__PORT" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ca: [unclosed\n", "not valid YAML"),
        ("ca:\n  trust_domain: a\n bad-indent: b\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping at the top level"),
        ("just a string\n", "expected a mapping at the top level"),
        ("bogus: 1\n", "unknown setting 'bogus'"),
        ("ca:\n  trust_domian: x.internal\n", "trust_domian"),
        ("ca:\n  kdf_log2_n: 10\n", "kdf_log2_n"),
        ("sqlite_synchronous: off\n", "sqlite_synchronous"),
        ("crl:\n  next_update: soon\n", "invalid duration 'soon'"),
        ("server:\n  port: 70000\n", "server.port: Input should be less than or equal to 65535"),
        ("server:\n  port: 0\n", "server.port: Input should be greater than or equal to 1"),
        ("profiles:\n  web:\n    ekus: [serverAuth]\n", "default_validity"),
        ("profiles:\n  web:\n    ekus: [a]\n    default_validity: 1d\n"
         "    max_validity: 2d\n    wildcard: true\n", "wildcard"),
    ],
    ids=["unclosed", "indent", "list", "scalar", "unknown-top", "unknown-ca-key",
         "kdf-too-low", "sync-off", "bad-duration", "port-too-high", "port-zero", "missing-field",
         "unknown-profile-key"],
)  # fmt: skip
def test_bad_config_is_a_clear_value_error(tmp_path: Path, text: str, words: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_settings(tmp_path)
    assert words in str(info.value)


@pytest.mark.parametrize("port", [0, 65536])
def test_a_bad_value_is_one_line_naming_file_and_setting(tmp_path: Path, port: int) -> None:
    write_config(tmp_path, f"server:\n  port: {port}\n")
    with pytest.raises(ValueError) as info:
        load_settings(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / CONFIG_FILE}: server.port: Input should be")
    assert "\n" not in str(info.value)  # the CLI prints it after "error:", on one line


def test_a_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKIFORGE_SERVER__PORT", "70000")
    with pytest.raises(ValueError, match=r"^PKIFORGE_SERVER__PORT: Input should be less"):
        load_settings(tmp_path)


@pytest.mark.parametrize("threads", [0, -1])
def test_server_threads_below_one_is_refused_naming_the_setting(
    tmp_path: Path, threads: int
) -> None:
    write_config(tmp_path, f"server:\n  threads: {threads}\n")
    with pytest.raises(ValueError, match=r"server\.threads must be at least 1.*0 \(inline\)"):
        load_settings(tmp_path)


def test_server_threads_is_unset_by_default_and_takes_a_pool_size(tmp_path: Path) -> None:
    assert load_settings(tmp_path).server.threads is None
    write_config(tmp_path, "server:\n  threads: 8\n")
    assert load_settings(tmp_path).server.threads == 8


def test_bad_env_value_is_a_value_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKIFORGE_CRL__NEXT_UPDATE", "tomorrow")
    with pytest.raises(ValueError, match="invalid duration 'tomorrow'"):
        load_settings(tmp_path)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, "")
    assert load_settings(tmp_path).ca.trust_domain == "pkiforge.internal"


def test_schema_errors_name_the_file_and_one_key_per_line(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "ca:\n  root_validity: forever\nprofiles:\n  web:\n    ekus: [serverAuth]\n"
        "server:\n  port: many\n",
    )
    with pytest.raises(ValueError) as info:
        load_settings(tmp_path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"invalid configuration in {tmp_path / CONFIG_FILE}:"
    assert sorted(line.strip().split(":")[0] for line in lines[1:]) == [
        "ca.root_validity",
        "profiles.web.default_validity",
        "profiles.web.max_validity",
        "server.port",
    ]
    assert "  profiles.web.max_validity: Field required" in lines
    assert "https://" not in str(info.value) and "Value error" not in str(info.value)


def test_schema_errors_from_the_environment_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKIFORGE_SERVER__PORT", "many")
    with pytest.raises(ValueError) as info:
        load_settings(tmp_path)
    assert str(info.value).startswith("PKIFORGE_SERVER__PORT: ")  # one problem: one line
    assert "many" not in str(info.value)  # values are not echoed: a URL may hold a password
