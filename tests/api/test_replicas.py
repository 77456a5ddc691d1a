"""Two `pkiforge serve` processes sharing PostgreSQL and Redis: one-time tokens and the
issuance rate limit hold across replicas."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.acme import jose
from tests.conftest import _empty_postgres

from .conftest import HTTPS_WHITELIST
from .helpers import make_csr
from .server import Server, make_home, two_replicas

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT = 5


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[tuple[Server, Server]]:
    """Servers A and B: one data directory, one PostgreSQL database, one Redis."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 cannot be reached: {exc}")
    _empty_postgres(postgres_url)  # the session database may hold another module's tables
    config = {
        "acme": {"enabled": True},
        "redis_url": REDIS_URL,
        "rate_limits": {
            "issuance_limit": LIMIT,
            "key_prefix": f"pkiforge-test-{secrets.token_hex(6)}:",  # runs never meet
        },
    }
    home = make_home(
        tmp_path_factory.mktemp("replicas") / "home", HTTPS_WHITELIST, config, postgres_url
    )
    with two_replicas(home) as pair:
        yield pair


def _token(server: Server) -> str:
    out = server.home.cli("token", "create", "--service", "enrollee", "--json").stdout
    return str(json.loads(out)["token"])


def _enroll(server: Server, token: str) -> httpx.Response:
    with server.client() as c:
        return c.post(
            "/api/v1/certificates/request",
            headers={"Authorization": f"Bearer {token}"},
            json={"csr": make_csr("enrollee.internal", ["enrollee.internal"])},
        )


def test_token_replayed_on_the_other_replica_is_refused(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    token = _token(a)
    first = _enroll(a, token)
    replay = _enroll(b, token)
    assert first.status_code == 201, first.text
    assert replay.status_code == 401 and replay.json()["reason"] == "token-used"


def test_token_raced_on_both_replicas_is_spent_once(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    token = _token(a)
    results: list[int] = []
    start = threading.Barrier(2)

    def go(server: Server) -> None:
        start.wait()
        results.append(_enroll(server, token).status_code)

    threads = [threading.Thread(target=go, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [201, 401]


def test_rate_limit_is_shared_by_both_replicas(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    cert = a.home.client_cert("burst", "x.burst.internal")
    codes: list[int] = []
    retry_after: list[str] = []
    for i in range(4):
        for server in (a, b):
            cn = f"n{i}-{server.port}.burst.internal"
            with server.client(cert) as c:
                r = c.post("/api/v1/certificates/request", json={"csr": make_csr(cn, [cn])})
            codes.append(r.status_code)
            if r.status_code == 429:
                retry_after.append(r.headers["retry-after"])
    assert codes.count(201) == LIMIT and codes.count(429) == 8 - LIMIT, codes
    assert all(int(v) >= 1 for v in retry_after)


def test_an_acme_nonce_from_one_replica_is_spent_once_on_either(
    replicas: tuple[Server, Server],
) -> None:
    """ACME nonces live in the database: B accepts A's nonce, then A refuses it (badNonce)."""
    a, b = replicas
    made = json.loads(a.home.cli("acme", "eab", "create", "--service", "billing", "--json").stdout)
    key = jose.fresh("ES256")
    with a.client() as ca, b.client() as cb:
        nonce = ca.head("/acme/services/new-nonce").headers["replay-nonce"]

        def new_account(client: httpx.Client, server: Server) -> httpx.Response:
            url = f"{server.url}/acme/services/new-account"
            mac = jose.b64decode(made["hmac_key"])
            payload = {"externalAccountBinding": jose.eab(made["kid"], mac, key.jwk(), url)}
            body = jose.jws(key, {"jwk": key.jwk(), "nonce": nonce, "url": url}, payload)
            return client.post(url, content=body, headers={"content-type": "application/jose+json"})

        assert new_account(cb, b).status_code == 201
        again = new_account(ca, a)
    assert again.status_code == 400
    assert again.json()["type"] == "urn:ietf:params:acme:error:badNonce"
