"""Build the use-case services from settings: the one place adapters meet the core."""

from __future__ import annotations

from dataclasses import dataclass

from pkiforge.ca.authority import HierarchyService
from pkiforge.ca.ca_revocation import CARevocationService
from pkiforge.ca.config import CAConfig, URLTemplates
from pkiforge.ca.context import CAContext
from pkiforge.ca.lifecycle import CertificateService
from pkiforge.ca.profiles import Profile
from pkiforge.ca.revocation import RevocationService
from pkiforge.clock import Clock, SystemClock
from pkiforge.settings import Settings
from pkiforge.signers.file import FileKeyStore, PassphraseSource
from pkiforge.store.db import SqlStore
from pkiforge.x509.keys import parse_key_type
from pkiforge.x509.names import validate_trust_domain


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
    config = ca_config(settings)
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


def ca_config(settings: Settings) -> CAConfig:
    """The plain values the core needs, taken from validated settings.

    Raises:
        InvalidInput / InvalidName: a value in the configuration is not acceptable.
    """
    ca, urls = settings.ca, settings.urls
    return CAConfig(
        trust_domain=validate_trust_domain(ca.trust_domain),
        organization=ca.organization,
        root_key_type=parse_key_type(ca.root_key_type),
        intermediate_key_type=parse_key_type(ca.intermediate_key_type),
        root_validity=ca.root_validity,
        intermediate_validity=ca.intermediate_validity,
        default_issuer=ca.default_issuer,
        backdate=ca.backdate,
        crl_next_update=settings.crl.next_update,
        crl_rebuild_delay=settings.crl.rebuild_delay,
        crl_rebuild_within=settings.crl.rebuild_within,
        urls=URLTemplates(urls.crl, urls.ocsp, urls.ca_issuers),
        profiles={
            name: Profile(
                name, tuple(p.ekus), p.default_validity, p.max_validity, p.allow_wildcards
            )
            for name, p in settings.profiles.items()
        },
    )
