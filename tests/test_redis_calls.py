"""RedisCalls: kept connections that never carry a stale or another process's reply, and the
redis-py pool internals it is built on (pinned to the minor version tested here)."""

from __future__ import annotations

import inspect
import os
import threading
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.retry import Retry

from pkiforge.redis_calls import RedisCalls
from tests.auth.redis_server import private_redis

pytestmark = pytest.mark.redis


def test_replies_come_back_and_one_connection_is_kept(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_client
    calls = RedisCalls(client)
    assert calls("SET", f"{prefix}a", b"1", "NX", "EX", 30) == b"OK"
    assert calls("SET", f"{prefix}a", b"1", "NX", "EX", 30) is None  # already there
    ids = {calls("CLIENT", "ID") for _ in range(20)}
    assert len(ids) == 1  # the same connection each time, not a new one per call
    assert 0 < int(client.ttl(f"{prefix}a")) <= 30


def test_a_kept_connection_killed_by_the_server_is_replaced_within_the_call(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_client
    calls = RedisCalls(client)
    first = calls("CLIENT", "ID")
    assert client.client_kill_filter(_id=first) == 1
    # stale: the call goes out again, once, on a new connection, and runs once
    assert calls("INCR", f"{prefix}runs") == 1
    assert calls("CLIENT", "ID") != first
    sent = calls.send("INCR", f"{prefix}runs")  # the same when the reply is read later
    assert client.client_kill_filter(_id=calls("CLIENT", "ID")) == 1
    assert sent.reply() == 2


def test_a_timeout_on_a_kept_connection_is_not_retried(
    redis_client: tuple[redis.Redis, str],
) -> None:
    """A timeout may mean the command ran: a retried SET NX would call a fresh nonce reused."""
    client, prefix = redis_client
    fast = redis.Redis(
        connection_pool=redis.ConnectionPool(
            **{**client.connection_pool.connection_kwargs, "socket_timeout": 0.2}
        )
    )
    calls = RedisCalls(fast)
    assert calls("PING") == b"PONG"
    with pytest.raises(redis.exceptions.TimeoutError):
        calls("BLPOP", f"{prefix}never", 2)  # Redis answers after 2 s; the client waits 0.2
    fast.close()


@pytest.mark.slow  # a redis-server of its own, restarted
def test_the_first_call_after_redis_restarts_is_answered(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        client = server.client()
        calls = RedisCalls(client)
        assert calls("SET", "k", b"1", "NX") == b"OK"
        server.restart()  # every kept connection is now stale
        assert calls("SET", "k", b"1", "NX") == b"OK"  # the new Redis, asked once
        assert calls("SET", "k", b"1", "NX") is None
        server.stop()
        with pytest.raises(redis.exceptions.ConnectionError):
            calls("PING")  # Redis down: the retry fails too, and the error comes through
        client.close()


def test_an_error_reply_drops_the_connection(redis_client: tuple[redis.Redis, str]) -> None:
    client, _ = redis_client
    calls = RedisCalls(client)
    first = calls("CLIENT", "ID")
    with pytest.raises(redis.exceptions.ResponseError):
        calls("NO-SUCH-COMMAND")
    assert calls("CLIENT", "ID") != first


def test_an_unknown_script_raises_redis_pys_own_no_script_error(
    redis_client: tuple[redis.Redis, str],
) -> None:
    """The Redis nonce store sends its script with EVALSHA and falls back to EVAL on this."""
    client, _ = redis_client
    calls = RedisCalls(client)
    with pytest.raises(redis.exceptions.NoScriptError):
        calls("EVALSHA", "0" * 40, 0)
    assert calls("EVAL", "return 7", 0) == 7


def test_threads_each_get_their_own_reply(redis_client: tuple[redis.Redis, str]) -> None:
    client, _ = redis_client
    calls = RedisCalls(client)
    wrong: list[tuple[bytes, object]] = []

    def echo(n: int) -> None:
        for i in range(200):
            sent = f"{n}-{i}".encode()
            got = calls("ECHO", sent)
            if got != sent:
                wrong.append((sent, got))

    threads = [threading.Thread(target=echo, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_use_the_parents_connection(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, _ = redis_client
    calls = RedisCalls(client)
    parent_id = calls("CLIENT", "ID")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the connection id it used, then leave at once
        try:
            os.write(write, str(calls("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id = int(os.read(read, 64))
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id != parent_id
    assert calls("CLIENT", "ID") == parent_id  # and the parent's is still good


class _Routed:
    """What a RedisCluster offers: commands routed per key, no single pool."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []

    def execute_command(self, *args: object) -> object:
        self.sent.append(args)
        return b"OK"


def test_a_client_without_one_pool_is_called_through_execute_command() -> None:
    routed = _Routed()
    calls = RedisCalls(routed)  # type: ignore[arg-type]
    assert calls("SET", "k", b"1", "NX", "EX", 5) == b"OK"
    assert routed.sent == [("SET", "k", b"1", "NX", "EX", 5)]


def test_a_sent_command_is_answered_after_other_work(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_client
    calls = RedisCalls(client)
    first = calls("CLIENT", "ID")
    pending = calls.send("SET", f"{prefix}s", b"1", "NX", "EX", 30)
    # Meanwhile another call borrows a second connection: the pending one is not shared.
    assert calls("CLIENT", "ID") != first
    assert pending.reply() == b"OK"
    assert client.get(f"{prefix}s") == b"1"
    with pytest.raises(RuntimeError, match="already read"):
        pending.reply()
    # Both connections went back to be kept, and each carries only its own replies.
    assert {calls("ECHO", b"x") for _ in range(5)} == {b"x"}


def test_an_error_reply_read_later_drops_that_connection(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, _ = redis_client
    calls = RedisCalls(client)
    first = calls("CLIENT", "ID")
    pending = calls.send("NO-SUCH-COMMAND")
    with pytest.raises(redis.exceptions.ResponseError):
        pending.reply()
    assert calls("CLIENT", "ID") != first


def test_a_send_to_an_unreachable_redis_raises_at_once() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    calls = RedisCalls(dead)
    with pytest.raises(redis.exceptions.ConnectionError):
        calls.send("PING")
    with pytest.raises(redis.exceptions.ConnectionError):
        calls.send("PING")  # a failed connection is not kept for the next call either


def test_without_one_pool_send_answers_at_once_and_reply_returns_it() -> None:
    routed = _Routed()
    pending = RedisCalls(routed).send("SET", "k", b"1")  # type: ignore[arg-type]
    assert routed.sent == [("SET", "k", b"1")]
    assert pending.reply() == b"OK"
    with pytest.raises(RuntimeError):
        pending.reply()


def test_the_pool_internals_redis_calls_uses_behave_as_it_expects(
    redis_client: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_client
    pool = client.connection_pool
    assert isinstance(pool, redis.ConnectionPool)
    required = [
        p
        for p in inspect.signature(pool.get_connection).parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert required == []  # RedisCalls calls get_connection() with no argument
    conn = pool.get_connection()
    try:
        assert isinstance(conn, AbstractConnection)
        conn.send_command("SET", f"{prefix}c", b"1", "EX", 30)
        assert conn.read_response() == b"OK"
        conn.send_command("GET", f"{prefix}c")
        assert conn.read_response() == b"1"  # raw replies, as RedisCalls returns them
        conn.send_command("NO-SUCH-COMMAND")
        with pytest.raises(redis.exceptions.ResponseError):
            conn.read_response()  # an error reply is raised, not returned
    finally:
        pool.release(conn)
    again = pool.get_connection()
    assert again is conn  # a released connection is handed out again
    again.disconnect()  # what RedisCalls does to a connection whose reply may be half read
    pool.release(again)
    fresh = pool.get_connection()
    try:
        fresh.send_command("PING")  # a disconnected connection connects again when used
        assert fresh.read_response() == b"PONG"
    finally:
        pool.release(fresh)
