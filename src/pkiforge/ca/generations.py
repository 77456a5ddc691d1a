"""Generations of an intermediate: what a rotation leaves behind, and what clients trust.

A rotation (`ca/rotation.py`) gives an intermediate a successor with a new key under the same
subject name, recorded as `<name>.2`, `<name>.3` ... so that every key keeps its own CRL,
CRL numbers and distribution URLs: a certificate names the CRL of the key that signed it.
The predecessor becomes `retired`: it issues nothing more, but stays trusted and keeps
signing CRLs and OCSP answers for what it issued, until its own certificate expires (every
certificate it issued expires before it does: validity never outlasts the issuer's).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from cryptography import x509

from pkiforge.ca.ca_certs import lineage
from pkiforge.ca.context import CAContext
from pkiforge.ca.events import EventType
from pkiforge.ca.models import Actor, CARecord, CAStatus
from pkiforge.ca.ports import Transaction
from pkiforge.errors import Conflict

ROTATED = "ca.rotated"  # the audit action of a completed rotation


def overlap(generations: list[CARecord], now: dt.datetime) -> list[x509.Certificate]:
    """The certificates relying parties need: the newest generation that is active, then the
    retired ones still valid at `now`, newest first."""
    certs = []
    for ca in generations:
        cert = ca.certificate
        if cert is None:
            continue
        if ca.status is CAStatus.ACTIVE or (
            ca.status is CAStatus.RETIRED and cert.not_valid_after_utc > now
        ):
            certs.append(cert)
    return certs


def retire_predecessors(
    ctx: CAContext, tx: Transaction, successor: CARecord, actor: Actor
) -> list[str]:
    """Inside `tx`: mark every active older generation of `successor` retired and audit the
    rotation; returns the names retired.

    Raises:
        Conflict: no active predecessor (another rotation completed first).
    """
    base, generation = lineage(successor.name)
    retired: list[str] = []
    for ca in tx.cas.list():
        name_base, n = lineage(ca.name)
        if name_base != base or n >= generation:
            continue
        locked = tx.cas.get(ca.name, for_update=True)
        if locked is None or locked.status is not CAStatus.ACTIVE:
            continue
        tx.cas.update(replace(locked, status=CAStatus.RETIRED))
        retired.append(locked.name)
    if not retired:
        raise Conflict(
            f"CA {base!r} has no active generation older than {successor.name!r} to rotate",
            field="name",
        )
    assert successor.certificate is not None
    ctx.audit(
        tx,
        actor,
        ROTATED,
        base,
        {
            "predecessor": ", ".join(retired),  # one, unless an older rotation was cut short
            "successor": successor.name,
            "serial": f"{successor.certificate.serial_number:x}",
            "not_after": successor.certificate.not_valid_after_utc,
        },
    )
    ctx.notify(
        tx,
        EventType.CA_ROTATED,
        data={
            "ca": base,
            "predecessor": retired,
            "successor": successor.name,
            "serial": f"{successor.certificate.serial_number:x}",
            "not_after": successor.certificate.not_valid_after_utc.isoformat(),
            "action": (
                "nothing, where the agent or PkiClient manage the service: they fetch the new "
                "CA bundle; elsewhere, install `pkiforge ca chain NAME` where peers are trusted"
            ),
        },
    )
    return retired
