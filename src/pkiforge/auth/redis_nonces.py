"""`RedisNonceStore`: nonces in Redis, shared by every replica, and when that memory began.

`<prefix>memory-start` holds `<milliseconds since the epoch>:<run_id>`: when the memory began,
and the `run_id` of the Redis process that held it then (Redis draws a new one each time it
starts). Nonce keys start with a digit, so none can collide with it. Each claim is one Lua
script, which Redis runs atomically: it reads the key, begins a new memory (now, this run_id)
when the key is gone or names another run, refuses a signature created before the memory
began, and otherwise does `SET nonce 1 NX EX ttl`. So the first claim after any loss notices
it, on whichever replica makes it:

- a restart, with or without persistence: the run_id changes. An RDB snapshot brings back
  less than Redis held, AOF with `everysec` may lose the last second on a crash, and pkiforge
  cannot tell how much a restart lost, so every restart begins a new memory;
- a failover: the promoted replica has a run_id of its own, and may lack the last writes
  (replication is asynchronous);
- `FLUSHALL`, or the key evicted or deleted: the key is gone.

Under `maxmemory-policy noeviction` nothing evicts nonces; other policies can evict nonces
and keep the key (`open` warns about them). With Redis Cluster the prefix needs a hash tag
(`{pkiforge}:auth:nonce:`) so that the key and the nonces share a slot; otherwise every claim
fails (CROSSSLOT) and requests are refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import TYPE_CHECKING

from pkiforge.auth.nonces import NonceClaim, memory_reset, nonce_key
from pkiforge.clock import Clock, SystemClock
from pkiforge.errors import AuthenticationFailed, StoreUnavailable
from pkiforge.redis_calls import PendingReply, RedisCalls

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisNonceStore"]

log = logging.getLogger("pkiforge.auth")

# Begins a new memory (ARGV[1]: now in ms) unless KEYS[1] holds one of this Redis run; sets
# `began` to 1 when it did. `INFO server` is the one place a script can read the run_id.
_MEMORY = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local held = redis.call('GET', KEYS[1])
local start = held and string.match(held, '^(%d+):' .. run .. '$')
local began = 0
if not start then
  start = ARGV[1]
  redis.call('SET', KEYS[1], start .. ':' .. run)
  began = 1
end
"""

# KEYS[1]: the memory-start key; KEYS[2]: the nonce. ARGV: now and created (ms since the
# epoch), the nonce's TTL (s). 1: stored; 0: seen; -1: created before the memory began;
# -2: the same, and this claim found the memory lost and began a new one.
_CLAIM = (
    _MEMORY
    + """
if tonumber(ARGV[2]) < tonumber(start) then
  return -1 - began
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return 1
end
return 0
"""
)
_CLAIM_SHA = hashlib.sha1(_CLAIM.encode(), usedforsecurity=False).hexdigest()
_OPEN = _MEMORY + "return began\n"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def _ms(at: dt.datetime) -> int:
    return (at - _EPOCH) // _MS


class RedisNonceStore:
    """Nonces in Redis, shared by every replica, with the time this memory of them began."""

    def __init__(
        self, client: Redis, *, prefix: str = "pkiforge:nonce:", clock: Clock | None = None
    ) -> None:
        self._call = RedisCalls(client)
        self._prefix = prefix
        self._start_key = prefix + "memory-start"
        self._clock = clock or SystemClock()

    def check_and_store(
        self, key_id: str, nonce: str, ttl_seconds: int, *, created: dt.datetime
    ) -> bool:
        return self.claim(key_id, nonce, ttl_seconds, created).settle()

    def claim(self, key_id: str, nonce: str, ttl_seconds: int, created: dt.datetime) -> NonceClaim:
        """Send the claim's script now; the claim reads Redis's answer when it is settled."""
        keys = (self._start_key, self._prefix + nonce_key(key_id, nonce))
        args = (_ms(self._clock.now()), _ms(created), max(1, ttl_seconds))
        return _RedisClaim(self._call, keys, args)

    def open(self) -> None:
        """At start: begin a memory unless Redis holds one of its current run, and warn
        unless Redis's `maxmemory-policy` is `noeviction`.

        Never raises: with Redis down the server still starts, and refuses signed requests
        (503) until Redis answers.
        """
        from redis.exceptions import RedisError

        try:
            if self._call("EVAL", _OPEN, 1, self._start_key, _ms(self._clock.now())):
                log.info("nonce store: Redis holds no nonce memory of its current run; one begins")
        except (RedisError, OSError) as exc:
            log.warning("nonce store: Redis cannot be reached at start (%s)", type(exc).__name__)
            return
        try:
            policy = _config_value(self._call("CONFIG", "GET", "maxmemory-policy"))
        except (RedisError, OSError) as exc:
            log.warning(
                "nonce store: cannot read Redis's maxmemory-policy (%s); it must be noeviction",
                type(exc).__name__,
            )
            return
        if policy != "noeviction":
            log.warning(
                "nonce store: Redis's maxmemory-policy is %s, not noeviction: once Redis is "
                "full it may evict nonces, and a signed request could be accepted twice; set "
                "maxmemory-policy noeviction (docs/request-signing.md)",
                policy,
            )


def _config_value(reply: object) -> str | None:
    """The value in a `CONFIG GET` reply for one name (a flat list in RESP2, a map in RESP3)."""
    if isinstance(reply, dict):
        values = list(reply.values())
    elif isinstance(reply, list | tuple):
        values = list(reply[1::2])
    else:
        return None
    if len(values) != 1:
        return None
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisClaim:
    """A claim script sent to Redis; a failure to send is kept and raised by `settle`."""

    __slots__ = ("_args", "_call", "_error", "_keys", "_pending")

    def __init__(self, call: RedisCalls, keys: tuple[str, str], args: tuple[int, int, int]) -> None:
        from redis.exceptions import RedisError

        self._call = call
        self._keys = keys
        self._args = args
        self._pending: PendingReply | None = None
        self._error: Exception | None = None
        try:
            self._pending = call.send("EVALSHA", _CLAIM_SHA, 2, *keys, *args)
        except (RedisError, OSError) as exc:
            self._error = exc

    def settle(self) -> bool:
        from redis.exceptions import NoScriptError, RedisError

        pending, error = self._pending, self._error
        self._pending = self._error = None
        if pending is None:
            if error is None:
                raise RuntimeError("the claim was already settled")
            raise _unavailable(error) from error
        try:
            try:
                answer = int(pending.reply())
            except NoScriptError:  # Redis restarted or flushed its scripts: send the script
                answer = int(self._call("EVAL", _CLAIM, 2, *self._keys, *self._args))
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        if answer < 0:
            if answer == -2:
                log.warning(
                    "nonce store: Redis lost its nonce memory (restarted, failed over, "
                    "flushed or evicted); signatures created before now are refused"
                )
            raise memory_reset()
        return answer == 1

    def abandon(self) -> None:
        from redis.exceptions import RedisError

        try:
            if self.settle():
                self._call("DEL", self._keys[1])
        except (AuthenticationFailed, StoreUnavailable, RedisError, OSError):
            pass  # the nonce, if it was stored, expires with its TTL


def _unavailable(exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"nonce store unavailable: {type(exc).__name__}", internal=str(exc))
