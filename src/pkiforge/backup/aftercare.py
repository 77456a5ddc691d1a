"""What a restored store must not get wrong, set in the restored copy before it is put in place.

A backup is older than the installation it replaces, which went on working after it was taken:

- CRL numbers: each issuer may have published CRLs after the backup, with numbers the copy
  does not know. RFC 5280 §5.2.3 wants them to increase, so each issuer's counter moves past
  anything that can have been published meanwhile (`next_crl_counter`) and its CRL is marked
  stale, so the server signs a new one (with the new number) as soon as it serves it.
- Certificates issued (and revocations recorded) after the backup are unknown to the copy: an
  audit entry records the gap, from the backup's time to the restore's.
- Request-signing nonces accepted after the backup are not in the copy's `nonces` table: the
  table's memory start (the row the database nonce store reads) is set to the restore time, so
  a signature made before the restore is refused instead of replayed.
- ACME nonces: the copy's may have been spent after the backup, so all of them are forgotten;
  a client refused with `badNonce` retries with the fresh nonce it is given.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pkiforge.actor import OPERATOR
from pkiforge.backup.manifest import Manifest
from pkiforge.ca.audit import next_entry
from pkiforge.errors import InvalidInput
from pkiforge.store.db import SqlStore
from pkiforge.store.tables import AcmeNonceRow, CARow, NonceRow

# CRLs per second of the gap assumed published by each issuer: twice what the server's own
# rebuilds can sign with `crl.rebuild_delay` at its default of one second
CRLS_PER_SECOND = 2
DEFAULT_MARGIN = 100_000  # at least this much further, however short the gap
MAX_CRL_NUMBER = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
# the `nonces` row whose time is where the table's memory begins (the database nonce store)
NONCE_MEMORY_ROW = "memory-start"
GAP_ACTION = "backup.restore"
CRL_ACTION = "crl.number_advance"


@dataclass(frozen=True)
class CRLAdvance:
    issuer: str
    highest: int  # the highest number in the backup
    next_number: int  # the number of the issuer's next CRL


@dataclass(frozen=True)
class AftercareReport:
    backup_created_at: dt.datetime
    restored_at: dt.datetime
    crls: list[CRLAdvance]

    @property
    def gap(self) -> dt.timedelta:
        return max(self.restored_at - self.backup_created_at, dt.timedelta(0))


def next_crl_counter(highest: int, gap: dt.timedelta, margin: int, floor: int) -> int:
    """The counter an issuer resumes from (its next CRL takes this + 1): past the backup's
    highest by `CRLS_PER_SECOND` for each second of the gap, at least by `margin`, and at
    least `floor` (the highest number the operator knows was published).

    Raises:
        InvalidInput: the result does not fit the column; give a smaller margin.
    """
    seconds = max(gap.total_seconds(), 0.0)
    counter = max(highest + max(margin, math.ceil(seconds * CRLS_PER_SECOND)), floor)
    if counter >= MAX_CRL_NUMBER:
        raise InvalidInput(
            f"the next CRL number would pass {MAX_CRL_NUMBER}; give a smaller "
            "--crl-number-margin, or --crl-number-floor with the highest number published",
            field="crl_number_margin",
        )
    return counter


def apply_aftercare(
    store: SqlStore,
    manifest: Manifest,
    restored_at: dt.datetime,
    *,
    margin: int = DEFAULT_MARGIN,
    floor: int = 0,
) -> AftercareReport:
    """Move the CRL counters, mark the CRLs stale, set the nonce memory start and record the
    gap, in one transaction of the restored copy."""
    gap = max(restored_at - manifest.created_at, dt.timedelta(0))
    advances: list[CRLAdvance] = []
    with store.transaction() as tx:
        for ca in tx.cas.list():
            highest = manifest.counts.crl_numbers.get(ca.name, ca.crl_number)
            counter = next_crl_counter(max(highest, ca.crl_number), gap, margin, floor)
            tx.conn.execute(
                update(CARow)
                .where(CARow.name == ca.name)
                .values(crl_number=counter, crl_stale_since=restored_at)
            )
            advances.append(CRLAdvance(ca.name, highest, counter + 1))
        memory = sqlite_insert(NonceRow).values(nonce_key=NONCE_MEMORY_ROW, expires_at=restored_at)
        tx.conn.execute(
            memory.on_conflict_do_update(
                index_elements=["nonce_key"], set_={"expires_at": restored_at}
            )
        )
        tx.conn.execute(delete(AcmeNonceRow))
        head = tx.audit.head()
        entry = next_entry(
            head,
            at=restored_at,
            actor=OPERATOR,
            action=GAP_ACTION,
            subject=None,
            details={
                "backup_created_at": manifest.created_at.isoformat(),
                "restored_at": restored_at.isoformat(),
                "gap_seconds": int(gap.total_seconds()),
                "backup_pkiforge_version": manifest.pkiforge_version,
                "certificates_in_backup": manifest.counts.certificates,
                "unknown": "certificates issued, revocations and CRLs published between "
                "backup_created_at and restored_at are not in this store",
                "nonce_memory_start": restored_at.isoformat(),
            },
        )
        tx.audit.add(entry)
        for advance in advances:
            entry = next_entry(
                entry,
                at=restored_at,
                actor=OPERATOR,
                action=CRL_ACTION,
                subject=advance.issuer,
                details={
                    "highest_in_backup": advance.highest,
                    "next_crl_number": advance.next_number,
                    "rule": f"highest + max({margin}, {CRLS_PER_SECOND} per second of the gap)"
                    + (f", at least {floor}" if floor else ""),
                },
            )
            tx.audit.add(entry)
    return AftercareReport(manifest.created_at, restored_at, advances)
