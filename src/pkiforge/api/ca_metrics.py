"""Metrics of the CA hierarchy, taken on each scrape: each CA's notAfter, whether its key can
be used here, and when its CRL lapses (the offline root's above all: nobody signs it but the
operator, at a ceremony)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pkiforge.api.metrics import NAMESPACE
from pkiforge.ca.context import CAContext
from pkiforge.ca.models import CAStatus
from pkiforge.errors import PkiError

log = logging.getLogger("pkiforge.api")


class CACollector(Collector):
    """Per CA in service: `pkiforge_ca_not_after_timestamp_seconds` and
    `pkiforge_ca_days_left` (the active generations; a predecessor retired by a rotation
    expires on purpose), `pkiforge_ca_key_available` (the CAs whose key is kept here, once
    it has been loaded or failed to), and `pkiforge_crl_next_update_timestamp_seconds` of
    each issuer's newest CRL; `key` says whether its key is `held` here or `offline`."""

    def __init__(
        self, ctx: CAContext, warning_days: int, keys: Callable[[], Mapping[str, bool]]
    ) -> None:
        self._ctx = ctx
        self._warning_days = warning_days
        self._keys = keys

    def collect(self) -> Iterator[Metric]:
        try:
            cas = self._ctx.cas()
            with self._ctx.store.transaction(readonly=True) as tx:
                crls = {name: tx.crls.state(name) for name, ca in cas.items() if ca.in_service}
        except PkiError as exc:  # the store is down: report nothing rather than fail the scrape
            log.warning("CA metrics skipped: %s", exc)
            return
        now = self._ctx.clock.now()
        labels = ["ca", "kind", "key"]
        not_after = GaugeMetricFamily(
            f"{NAMESPACE}_ca_not_after_timestamp_seconds",
            "The notAfter of each active CA certificate.",
            labels=labels,
        )
        days_left = GaugeMetricFamily(
            f"{NAMESPACE}_ca_days_left",
            "Days until each active CA certificate expires.",
            labels=labels,
        )
        warning = GaugeMetricFamily(
            f"{NAMESPACE}_ca_warning_days",
            "rotation_policy.ca_warning_days: a CA this close to its notAfter is warned about.",
            value=self._warning_days,
        )
        key_ok = GaugeMetricFamily(
            f"{NAMESPACE}_ca_key_available",
            "1 when the last load of the CA's key (at start, or to sign) worked, else 0.",
            labels=["ca"],
        )
        crl_next = GaugeMetricFamily(
            f"{NAMESPACE}_crl_next_update_timestamp_seconds",
            "The nextUpdate of each issuer's newest CRL.",
            labels=labels,
        )
        keys = self._keys()
        for name, ca in cas.items():
            if not ca.in_service or ca.certificate is None:
                continue
            values = [name, ca.kind.value, "held" if ca.key_ref is not None else "offline"]
            if ca.status is CAStatus.ACTIVE:
                end = ca.certificate.not_valid_after_utc
                not_after.add_metric(values, end.timestamp())
                days_left.add_metric(values, (end - now).total_seconds() / 86400)
            if ca.key_ref is not None and name in keys:
                key_ok.add_metric([name], int(keys[name]))
            crl = crls.get(name)
            if crl is not None and crl.next_update is not None:
                crl_next.add_metric(values, crl.next_update.timestamp())
        yield from (not_after, days_left, warning, key_ok, crl_next)
