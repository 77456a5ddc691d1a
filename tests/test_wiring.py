"""The composition root: one Redis client per server (and one of the readiness probe's own, with
its short timeout), the nonce store the settings select."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from pkiforge.errors import StoreUnavailable
from pkiforge.pki import Pki
from pkiforge.settings import AuthSettings, ServerSettings, Settings
from pkiforge.store.redis_health import TIMEOUT_SECONDS
from pkiforge.wiring import build_app_state, nonce_backend
from tests.ca.helpers import make_pki

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Pki]:
    made = make_pki(tmp_path / "home", init=False)
    yield made
    made.close()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """The URL of each Redis client made, and whether it is the readiness probe's (told apart
    by its short timeout)."""
    made: list[tuple[str, bool]] = []
    real = redis.Redis.from_url

    def from_url(url: str, **kwargs: Any) -> redis.Redis:
        made.append((url, kwargs.get("socket_timeout") == TIMEOUT_SECONDS))
        return real(url, **kwargs)

    monkeypatch.setattr(redis.Redis, "from_url", from_url)
    return made


def _settings(pki: Pki, **update: Any) -> Settings:
    return pki.settings.model_copy(update=update)


def _urls(connections: list[tuple[str, bool]], *, probe: bool) -> list[str]:
    return sorted(url for url, is_probe in connections if is_probe == probe)


def test_rate_limits_nonces_and_failures_share_one_client(
    pki: Pki, connections: list[tuple[str, bool]]
) -> None:
    state = build_app_state(_settings(pki, redis_url=REDIS), pki)
    assert state.signing.backend == "redis"
    assert _urls(connections, probe=False) == [REDIS]
    assert _urls(connections, probe=True) == [REDIS]


def test_a_separate_auth_server_gets_its_own_client(
    pki: Pki, connections: list[tuple[str, bool]]
) -> None:
    other = "redis://127.0.0.1:6379/1"
    build_app_state(_settings(pki, redis_url=REDIS, auth=AuthSettings(redis_url=other)), pki)
    assert _urls(connections, probe=False) == [REDIS, other]
    assert _urls(connections, probe=True) == [REDIS, other]


def test_no_redis_url_makes_no_client(pki: Pki, connections: list[tuple[str, bool]]) -> None:
    assert build_app_state(pki.settings, pki).signing.backend == "memory"
    assert connections == []


@pytest.mark.parametrize(
    ("update", "setting"),
    [
        ({"redis_url": "nonsense://x"}, "redis_url"),
        ({"auth": AuthSettings(redis_url="nonsense://x")}, "auth.redis_url"),
    ],
    ids=["redis_url", "auth.redis_url"],
)
def test_an_unusable_url_is_refused_by_its_setting(
    pki: Pki, update: dict[str, Any], setting: str
) -> None:
    with pytest.raises(StoreUnavailable) as info:
        build_app_state(_settings(pki, **update), pki)
    assert info.value.message == f"{setting} cannot be parsed"


CHOICES = {
    "auto, one process": ({}, None, 1, "memory"),
    "auto, several workers": ({}, None, 2, "database"),
    "auto, redis": ({}, REDIS, 1, "redis"),
    "asked for memory": ({"nonce_store": "memory"}, REDIS, 2, "memory"),
    "asked for database": ({"nonce_store": "database"}, None, 1, "database"),
}


@pytest.mark.parametrize(
    ("auth", "url", "workers", "backend"), CHOICES.values(), ids=CHOICES.keys()
)
def test_the_nonce_store_follows_the_settings(
    tmp_path: Path, auth: dict[str, Any], url: str | None, workers: int, backend: str
) -> None:
    settings = Settings(
        home=tmp_path,
        redis_url=url,
        auth=AuthSettings(**auth),
        server=ServerSettings(workers=workers),
    )
    assert nonce_backend(settings) == backend


def test_redis_nonces_without_a_url_are_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, auth=AuthSettings(nonce_store="redis"))
    with pytest.raises(ValueError, match=r"no auth\.redis_url"):
        nonce_backend(settings)
