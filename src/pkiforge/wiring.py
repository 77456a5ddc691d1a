"""Build the use-case services from settings: the one place adapters meet the core."""

from __future__ import annotations

from dataclasses import dataclass

from pkiforge.ca.authority import HierarchyService
from pkiforge.ca.ca_revocation import CARevocationService
from pkiforge.ca.config import CAConfig
from pkiforge.ca.context import CAContext
from pkiforge.ca.lifecycle import CertificateService
from pkiforge.ca.revocation import RevocationService
from pkiforge.clock import Clock, SystemClock
from pkiforge.settings import Settings
from pkiforge.signers.file import FileKeyStore, PassphraseSource
from pkiforge.store.db import SqlStore


@dataclass
class Pki:
    """Everything an edge (CLI, API) calls."""

    settings: Settings
    store: SqlStore
    ctx: CAContext
    hierarchy: HierarchyService
    certificates: CertificateService
    revocation: RevocationService
    ca_revocation: CARevocationService

    def close(self) -> None:
        self.store.close()


def build_pki(
    settings: Settings,
    passphrase: bytes | PassphraseSource,
    clock: Clock | None = None,
    store: SqlStore | None = None,
) -> Pki:
    """Open the store (migrating it on first use) and wire the services.

    Raises:
        StoreUnavailable, InvalidInput.
    """
    config = CAConfig.from_settings(settings)
    store = store or SqlStore.open(
        settings.effective_database_url, synchronous=settings.sqlite_synchronous
    )
    keys = FileKeyStore(settings.home, passphrase, settings.ca.kdf_log2_n)
    ctx = CAContext(store=store, keys=keys, config=config, clock=clock or SystemClock())
    revocation = RevocationService(ctx)
    return Pki(
        settings,
        store,
        ctx,
        HierarchyService(ctx),
        CertificateService(ctx),
        revocation,
        CARevocationService(ctx, revocation),
    )
