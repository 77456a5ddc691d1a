"""One Redis command per call on a connection kept for the next call: for the per-request paths.

A call through `Redis.set(...)` spends most of its CPU on redis-py's own work (pool checkout
and release, argument filtering, observability hooks), not on the command; sending the command
on a kept connection skips that. The connections come from the client's own pool, so its
settings (address, TLS, password, database, timeouts) apply unchanged. This relies on the
pool's internals (`get_connection`, `release`, and the connection's `send_command`,
`read_response`, `disconnect`), so redis-py is pinned to the minor version
tests/test_redis_calls.py has checked (docs/dependencies.md).

A client without a single connection pool (a `RedisCluster`, which routes each key to its
node) is called through its own `execute_command` instead.

A call that fails for any reason drops its connection (the reply may be half read) and raises;
callers turn that into `StoreUnavailable` and refuse the request. One failure is retried, once,
through redis-py's `Retry`: a connection error (not a timeout) on a connection kept from an
earlier call. That is a stale connection, closed by the other end while it was idle (Redis
restarted, failed over, or dropped it at its `timeout`), and the retry goes out on a connection
the pool checks or opens. A command on it never reached a Redis that is still running, so it
runs once; a timeout is never retried (the command may have run: a retried `SET NX` would then
report a fresh nonce as reused), nor an error on a new connection (Redis is down: 503).

`send` splits a call in two, so that the caller can work while Redis answers: the request
verifier sends the nonce's `SET NX` before it checks the signature and reads the reply after,
and the round trip costs it no wait.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from redis import Redis
    from redis.connection import AbstractConnection, ConnectionPool

__all__ = ["PendingReply", "RedisCalls"]

T = TypeVar("T")


class RedisCalls:
    """Send single commands over connections borrowed from `client`'s pool and kept idle here."""

    def __init__(self, client: Redis) -> None:
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as StaleError
        from redis.retry import Retry

        self._client = client
        self._pool: ConnectionPool | None = getattr(client, "connection_pool", None)
        self._lock = threading.Lock()
        self._idle: list[AbstractConnection] = []
        self._pid = os.getpid()
        # once, at once, and only on a connection error (redis-py's TimeoutError is apart)
        self._retry = Retry(NoBackoff(), 1, supported_errors=(StaleError,))

    def __call__(self, *args: str | bytes | int) -> Any:
        """Send one command and return its raw reply.

        Raises:
            redis.exceptions.RedisError, OSError: the command failed or Redis cannot be reached.
        """
        return self.send(*args).reply()

    def send(self, *args: str | bytes | int) -> PendingReply:
        """Send one command now; its reply is read by `PendingReply.reply`, which must follow.

        Raises:
            redis.exceptions.RedisError, OSError: the command could not be sent.
        """
        if self._pool is None:
            return PendingReply(self, None, self._client.execute_command(*args))  # type: ignore[no-untyped-call]
        conn, kept = self._borrow()
        tries = iter([(conn, kept)])

        def attempt() -> PendingReply:
            conn, kept = next(tries, (None, False))
            if conn is None:  # the retry: a connection the pool checks or opens
                conn = self._pool_connection()
            try:
                conn.send_command(*args)  # type: ignore[no-untyped-call]
            except BaseException:
                self._drop(conn)
                raise
            return PendingReply(self, conn, None, args, kept)

        return self.retried(attempt, kept)

    def retried(self, attempt: Callable[[], T], kept: bool) -> T:
        """`attempt()`, and once more if it failed with a connection error on a `kept`
        connection (which `attempt` has dropped)."""

        return self._retry.call_with_retry(attempt, _nothing, is_retryable=lambda _: kept)

    def call_new(self, args: tuple[str | bytes | int, ...]) -> Any:
        """Send one command on a connection the pool checks or opens, and read its reply."""
        conn = self._pool_connection()
        try:
            conn.send_command(*args)  # type: ignore[no-untyped-call]
            value = conn.read_response()
        except BaseException:
            self._drop(conn)
            raise
        self._keep(conn)
        return value

    def _pool_connection(self) -> AbstractConnection:
        assert self._pool is not None
        return self._pool.get_connection()

    def _keep(self, conn: AbstractConnection) -> None:
        with self._lock:
            self._idle.append(conn)

    def _drop(self, conn: AbstractConnection) -> None:
        assert self._pool is not None
        conn.disconnect()  # type: ignore[no-untyped-call]
        self._pool.release(conn)  # type: ignore[arg-type]

    def _borrow(self) -> tuple[AbstractConnection, bool]:
        """A connection, and whether it was kept from an earlier call (it may be stale)."""
        assert self._pool is not None
        with self._lock:
            if self._pid != os.getpid():
                # a forked child must not share the parent's sockets: replies would interleave
                self._idle = []
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop(), True
        return self._pool.get_connection(), False


class PendingReply:
    """A command `RedisCalls.send` sent whose reply is not read yet.

    Its connection belongs to it until `reply` is called, so `reply` must be called once
    whatever happens in between (`try`/`finally`); a second call raises `RuntimeError`.
    """

    __slots__ = ("_args", "_calls", "_conn", "_done", "_kept", "_value")

    def __init__(
        self,
        calls: RedisCalls,
        conn: AbstractConnection | None,
        value: Any,
        args: tuple[str | bytes | int, ...] = (),
        kept: bool = False,
    ) -> None:
        self._calls = calls
        self._conn = conn
        self._value = value
        self._args = args  # sent again, on a new connection, if `conn` turns out stale
        self._kept = kept
        self._done = False

    def reply(self) -> Any:
        """The raw reply.

        Raises:
            redis.exceptions.RedisError, OSError: the command failed or Redis cannot be reached.
        """
        if self._done:
            raise RuntimeError("the reply was already read")
        self._done = True
        conn = self._conn
        if conn is None:  # a client without a pool answered when the command was sent
            return self._value
        self._conn = None
        calls, first = self._calls, True

        def attempt() -> Any:
            nonlocal first
            if not first:
                return calls.call_new(self._args)
            first = False
            try:
                value = conn.read_response()
            except BaseException:
                calls._drop(conn)
                raise
            calls._keep(conn)
            return value

        return calls.retried(attempt, self._kept)


def _nothing(_: Exception) -> None:
    """The retry's failure handler: `attempt` has already dropped the failed connection."""
