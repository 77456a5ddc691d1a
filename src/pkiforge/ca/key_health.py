"""Whether each CA's key can be used here: checked once at start and on every load.

A CA whose key is kept here but cannot be loaded (a wrong or missing passphrase, a missing
or damaged file, a key that does not match its certificate) stops issuing, signing CRLs and
answering OCSP. `KeyHealth` keeps what the last attempt found per CA, for the metrics
(`pkiforge_ca_key_available`) and the log; it never holds a key or a passphrase.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

log = logging.getLogger("pkiforge.ca")


class KeyHealth:
    """The outcome of the last use of each CA's key: True usable, False not."""

    def __init__(self) -> None:
        self._state: dict[str, bool] = {}
        self._lock = threading.Lock()

    def record(self, ca: str, ok: bool, why: str | None = None) -> None:
        """Note an attempt; a change is logged (the reason names no secret: our errors' own
        messages)."""
        with self._lock:
            before = self._state.get(ca)
            self._state[ca] = ok
        if before is ok:
            return
        if ok:
            if before is False:
                log.warning("the key of CA %s can be used again", ca)
        else:
            log.error("the key of CA %s cannot be used: %s", ca, why or "unknown error")

    def state(self) -> Mapping[str, bool]:
        with self._lock:
            return dict(self._state)
