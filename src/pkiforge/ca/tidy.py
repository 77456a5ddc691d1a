"""Tidy: expired certificates leave the CRLs, and after a retention the inventory.

A CRL lists only unexpired revoked certificates (RFC 5280 §3.3 lets an entry go once the
certificate has expired; `RevocationService` builds CRLs so), but a CRL already signed keeps
listing them until it is replaced: tidy replaces a CRL early when entries on it have expired
since it was signed. Certificates expired longer than the retention are marked archived: the
inventory's queries and CRL building leave them out; they stay readable by serial (OCSP, `cert
show`), and their audit entries stay in the chain. The archiving is audited too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from pkiforge.ca.context import CAContext
from pkiforge.ca.models import SYSTEM
from pkiforge.ca.revocation import RevocationService

BATCH = 1000  # certificates archived per transaction


class Tidy:
    """The tidy use-case."""

    def __init__(
        self, ctx: CAContext, revocation: RevocationService, archive_after: dt.timedelta
    ) -> None:
        self.ctx = ctx
        self.revocation = revocation
        self.archive_after = archive_after

    def run(self, still_held: Callable[[], bool] = lambda: True) -> dict[str, Any]:
        """Both steps; `still_held` is asked between batches (stop once it says no).

        Raises:
            StoreUnavailable, BadPassphrase.
        """
        resigned = self.drop_expired_entries()
        archived = self.archive(still_held)
        return {"crls_signed": resigned, "archived": archived}

    def drop_expired_entries(self) -> list[str]:
        """Sign a new CRL for each issuer (key held here) whose newest CRL lists certificates
        that have expired since; return those issuers."""
        now = self.ctx.clock.now()
        signed = []
        for ca in self.ctx.cas(fresh=True).values():
            if not ca.in_service or ca.key_ref is None:  # a rotated CA's CRL too
                continue
            with self.ctx.store.transaction(readonly=True) as tx:
                state = tx.crls.state(ca.name)
                if state is None or state.this_update is None:
                    continue
                expired = tx.maintenance.expired_on_crl(ca.name, state.this_update, now)
            if expired:
                self.revocation.generate_crl(ca.name, actor=SYSTEM)
                signed.append(ca.name)
        return signed

    def archive(self, still_held: Callable[[], bool] = lambda: True) -> int:
        """Mark certificates expired longer than the retention archived, a batch per
        transaction with its audit entry; return how many."""
        now = self.ctx.clock.now()
        cutoff = now - self.archive_after
        total, start = 0, None
        while still_held():
            with self.ctx.store.transaction() as tx:
                count, start = tx.maintenance.archive(cutoff, now, BATCH, start)
                if count:
                    self.ctx.audit(
                        tx,
                        SYSTEM,
                        "cert.archive",
                        None,
                        {"count": count, "expired_before": cutoff, "archived_at": now},
                    )
            total += count
            if count < BATCH:
                break
        return total
