"""Whether this process can do its job, for `/readyz` and the `pkiforge_ready` gauge.

Three checks, each "ok" or a short word on what failed (never a path, host or driver message;
the log gets those):

- `database`: a query answers and a CA exists;
- `write`: the database takes writes (store/health.py: a recent heartbeat write, and no write
  failed since);
- `storage` (SQLite only): the free space on the database's filesystem is at least the reserve
  (store/space.py), below which the API refuses new write work;
- `redis` (when a Redis URL is set): every configured Redis answers a PING (store/redis_health.py);
  without it signed requests are refused, so the replica is not ready (fail closed).
"""

from __future__ import annotations

import logging
import threading

from pkiforge.errors import StoreUnavailable
from pkiforge.pki import Pki
from pkiforge.store.health import WriteProbe
from pkiforge.store.redis_health import RedisProbe
from pkiforge.store.space import DiskReserve

log = logging.getLogger("pkiforge.api")
OK = "ok"


class Readiness:
    """The readiness checks of one process; logs each change between ready and not."""

    def __init__(
        self,
        pki: Pki,
        probe: WriteProbe,
        reserve: DiskReserve | None,
        redis: RedisProbe | None = None,
    ) -> None:
        self._pki = pki
        self._probe = probe
        self.reserve = reserve
        self._redis = redis
        self._ready: bool | None = None
        self._lock = threading.Lock()

    def checks(self) -> dict[str, str]:
        """Each check's outcome: "ok", or what failed."""
        why: dict[str, str] = {}
        out = {"database": self._database(why)}
        if out["database"] == OK:
            write = self._probe.check()
            out["write"] = OK if write.ok else "failed"
            if write.detail:
                why["write"] = write.detail
        else:
            out["write"] = "not tried"
        if self.reserve is not None:
            out["storage"] = self._storage(self.reserve, why)
        if self._redis is not None:
            redis = self._redis.check()
            out["redis"] = OK if redis.ok else "unavailable"
            if redis.detail:
                why["redis"] = redis.detail
        self._log_change(out, why)
        return out

    def _database(self, why: dict[str, str]) -> str:
        try:
            # a query: fails with StoreUnavailable when the database is down
            return OK if self._pki.hierarchy.all() else "no CA"
        except StoreUnavailable as exc:
            why["database"] = exc.internal or str(exc)  # for the log only
            return "unavailable"

    @staticmethod
    def _storage(reserve: DiskReserve, why: dict[str, str]) -> str:
        try:
            free = reserve.free()
        except OSError as exc:
            why["storage"] = exc.strerror or type(exc).__name__
            return "unknown"
        if free < reserve.reserve:
            why["storage"] = f"{free} bytes free, reserve {reserve.reserve}"
            return "below reserve"
        return OK

    def _log_change(self, checks: dict[str, str], why: dict[str, str]) -> None:
        ready = all(value == OK for value in checks.values())
        with self._lock:
            changed, self._ready = ready != self._ready, ready
        if not changed:
            return
        if ready:
            log.info("ready")
            return
        failed = ", ".join(
            f"{name} {value}" + (f" ({why[name]})" if name in why else "")
            for name, value in checks.items()
            if value != OK
        )
        log.warning("not ready: %s", failed)
