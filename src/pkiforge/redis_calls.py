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
callers turn that into `StoreUnavailable` and refuse the request. Nothing is retried: a retried
`SET NX` whose first attempt reached Redis would report a fresh nonce as reused.

`send` splits a call in two, so that the caller can work while Redis answers: the request
verifier sends the nonce's `SET NX` before it checks the signature and reads the reply after,
and the round trip costs it no wait.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis import Redis
    from redis.connection import AbstractConnection, ConnectionPool

__all__ = ["PendingReply", "RedisCalls"]


class RedisCalls:
    """Send single commands over connections borrowed from `client`'s pool and kept idle here."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._pool: ConnectionPool | None = getattr(client, "connection_pool", None)
        self._lock = threading.Lock()
        self._idle: list[AbstractConnection] = []
        self._pid = os.getpid()

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
        conn = self._borrow()
        try:
            conn.send_command(*args)  # type: ignore[no-untyped-call]
        except BaseException:
            self._drop(conn)
            raise
        return PendingReply(self, conn, None)

    def _keep(self, conn: AbstractConnection) -> None:
        with self._lock:
            self._idle.append(conn)

    def _drop(self, conn: AbstractConnection) -> None:
        assert self._pool is not None
        conn.disconnect()  # type: ignore[no-untyped-call]
        self._pool.release(conn)  # type: ignore[arg-type]

    def _borrow(self) -> AbstractConnection:
        assert self._pool is not None
        with self._lock:
            if self._pid != os.getpid():
                # a forked child must not share the parent's sockets: replies would interleave
                self._idle = []
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        return self._pool.get_connection()


class PendingReply:
    """A command `RedisCalls.send` sent whose reply is not read yet.

    Its connection belongs to it until `reply` is called, so `reply` must be called once
    whatever happens in between (`try`/`finally`); a second call raises `RuntimeError`.
    """

    __slots__ = ("_calls", "_conn", "_done", "_value")

    def __init__(self, calls: RedisCalls, conn: AbstractConnection | None, value: Any) -> None:
        self._calls = calls
        self._conn = conn
        self._value = value
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
        try:
            value = conn.read_response()
        except BaseException:
            self._calls._drop(conn)
            raise
        self._calls._keep(conn)
        return value
