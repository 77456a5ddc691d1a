"""`Pki`: the core's services over one store, as the composition root (wiring.py) built them."""

from __future__ import annotations

from dataclasses import dataclass

from pkiforge.ca.ca_revocation import CARevocationService
from pkiforge.ca.context import CAContext
from pkiforge.ca.hierarchy import HierarchyService
from pkiforge.ca.notifications import NotificationService
from pkiforge.ca.ocsp import OCSPResponder
from pkiforge.ca.operator_certs import OperatorCertificates
from pkiforge.ca.revocation import RevocationService
from pkiforge.ca.rotation import RotationService
from pkiforge.ca.service_webhooks import ServiceWebhooks
from pkiforge.settings import Settings
from pkiforge.store.db import SqlStore


@dataclass
class Pki:
    """Everything an edge (CLI, API) calls."""

    settings: Settings
    store: SqlStore
    ctx: CAContext
    hierarchy: HierarchyService
    certificates: OperatorCertificates
    revocation: RevocationService
    ca_revocation: CARevocationService
    notifications: NotificationService
    ocsp: OCSPResponder

    @property
    def rotation(self) -> RotationService:
        """Rotating intermediates (stateless over the hierarchy)."""
        return RotationService(self.hierarchy, self.ocsp.responders)

    @property
    def service_webhooks(self) -> ServiceWebhooks:
        """Services' own webhooks (stateless over the store)."""
        return ServiceWebhooks(
            self.ctx, allow_loopback_http=self.settings.notifications.allow_loopback_http
        )

    def close(self) -> None:
        self.store.close()
