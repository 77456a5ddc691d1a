"""When an issuer's CRL must be replaced, and what this process last served of each issuer.

An issuer's CRL is stale from the first revocation it does not list (the store marks it in the
revocation's own transaction) and from half-way to its nextUpdate. A CRL missing revocations
is replaced once no revocation has come for `delay`, and at the latest `within` after the
first it misses, so that a burst of revocations shares a few signatures; until then the stored
CRL is served, flagged as missing revocations. Which replica signs is settled in the store
(`RevocationService.refresh_crl`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field

from pkiforge.ca.models import CRLRecord, CRLState

AT_ONCE = dt.datetime.min.replace(tzinfo=dt.UTC)


def rebuild_due(state: CRLState, delay: dt.timedelta, within: dt.timedelta) -> dt.datetime:
    """When the issuer's newest CRL must be replaced (AT_ONCE when there is none)."""
    if state.number == 0 or state.this_update is None or state.next_update is None:
        return AT_ONCE
    halfway = state.this_update + (state.next_update - state.this_update) / 2
    if state.stale_since is None:
        return halfway
    last = max(state.stale_since, state.last_revoked_at or state.stale_since)
    return min(halfway, last + delay, state.stale_since + within)


@dataclass(frozen=True)
class ServedCRL:
    """The CRL to serve, and whether revocations are recorded that it does not list yet (it
    will be replaced within the rebuild delay, or is kept because the key is offline)."""

    record: CRLRecord
    missing_revocations: bool


@dataclass
class _Seen:
    served: ServedCRL
    due: dt.datetime
    read_at: float  # time.monotonic()


@dataclass
class PublishedCRLs:
    """What this process last served per issuer, trusted for `recheck` seconds: a revocation
    recorded by another process is seen within that time, one recorded here at once."""

    recheck: float = 1.0
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def get(self, issuer: str, now: dt.datetime) -> ServedCRL | None:
        """The CRL served last, unless it is older than `recheck` or due by `now`."""
        seen = self._seen.get(issuer)
        if seen is None or now >= seen.due or time.monotonic() - seen.read_at >= self.recheck:
            return None
        return seen.served

    def known(self, issuer: str) -> CRLRecord | None:
        """The CRL served last, however old (to skip reading its DER again)."""
        seen = self._seen.get(issuer)
        return seen.served.record if seen is not None else None

    def put(self, issuer: str, served: ServedCRL, due: dt.datetime) -> None:
        self._seen[issuer] = _Seen(served, due, time.monotonic())

    def forget(self, issuer: str) -> None:
        """Read the issuer's state again next time (a revocation was recorded here)."""
        self._seen.pop(issuer, None)

    def lock(self, issuer: str) -> threading.Lock:
        """Held while this process rebuilds the issuer's CRL: its other threads that find it
        stale wait and then read the new one, instead of queueing for the store's lock."""
        with self._guard:
            return self._locks.setdefault(issuer, threading.Lock())
