"""The jobs pkiforge runs by itself. A job is added here, in `standard_jobs`, and nowhere
else: the scheduler, `pkiforge scheduler`, the metrics and the docs' table take the list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pkiforge.ca.ca_expiry import CAExpiryCheck
from pkiforge.ca.context import CAContext
from pkiforge.ca.expiry_scan import ExpiryScan
from pkiforge.ca.models import SYSTEM
from pkiforge.ca.ocsp import OCSPResponder
from pkiforge.ca.revocation import RevocationService
from pkiforge.ca.tidy import Tidy
from pkiforge.scheduler.core import Job, JobContext

CRL_REFRESH, EXPIRY_SCAN, CA_EXPIRY, TIDY = "crl-refresh", "expiry-scan", "ca-expiry", "tidy"
OCSP_REFRESH = "ocsp-refresh"
# delivery of recorded notifications: added by the composition root when webhooks are set
NOTIFY = "notify"


@dataclass(frozen=True)
class Intervals:
    """How often each job runs."""

    crl_refresh: dt.timedelta
    ocsp_refresh: dt.timedelta
    expiry_scan: dt.timedelta
    ca_expiry: dt.timedelta
    tidy: dt.timedelta


def standard_jobs(
    ctx: CAContext,
    revocation: RevocationService,
    expiry: ExpiryScan,
    ca_expiry: CAExpiryCheck,
    tidy: Tidy,
    intervals: Intervals,
    ocsp: OCSPResponder,
) -> list[Job]:
    """Every job, in the order a pass runs them."""

    def refresh_crls(job: JobContext) -> dict[str, Any]:
        return _refresh_crls(ctx, revocation, job)

    def refresh_ocsp(job: JobContext) -> dict[str, Any]:
        # responder certificates first: the answers signed next use the new one
        rotated = ocsp.responders.rotate_due()
        return {"responders_made": rotated, "answers_signed": ocsp.refresh_due()}

    def scan(_: JobContext) -> dict[str, Any]:
        return expiry.scan().summary()

    def check_cas(_: JobContext) -> dict[str, Any]:
        return ca_expiry.check()

    def tidy_up(job: JobContext) -> dict[str, Any]:
        return tidy.run(job.still_held)

    return [
        Job(CRL_REFRESH, intervals.crl_refresh, refresh_crls),
        Job(OCSP_REFRESH, intervals.ocsp_refresh, refresh_ocsp),
        Job(EXPIRY_SCAN, intervals.expiry_scan, scan),
        Job(CA_EXPIRY, intervals.ca_expiry, check_cas),
        Job(TIDY, intervals.tidy, tidy_up),
    ]


def _refresh_crls(ctx: CAContext, revocation: RevocationService, job: JobContext) -> dict[str, Any]:
    """Each issuer whose key is held here gets its next CRL once the current one is due
    (half-way to its nextUpdate, or soon after a revocation it does not list); an issuer
    whose key is offline (the root, usually) is named with its CRL's nextUpdate."""
    signed: list[str] = []
    offline: dict[str, str | None] = {}
    for ca in ctx.cas(fresh=True).values():
        if not ca.in_service:  # active, or retired by a rotation: it answers for its leaves
            continue
        if ca.key_ref is None:
            with ctx.store.transaction(readonly=True) as tx:
                state = tx.crls.state(ca.name)
            lapses = state.next_update if state is not None else None
            offline[ca.name] = lapses.isoformat() if lapses is not None else None
            continue
        if not job.still_held():
            break
        if revocation.refresh_if_due(ca.name, actor=SYSTEM) is not None:
            signed.append(ca.name)
    return {"crls_signed": signed, "offline_next_update": offline}
