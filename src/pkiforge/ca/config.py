"""What the core needs to know from configuration, as one frozen value."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from pkiforge.ca.profiles import Profile
from pkiforge.x509.extensions import DistributionURLs
from pkiforge.x509.keys import KeyType


@dataclass(frozen=True)
class URLTemplates:
    """Distribution URLs with `{issuer}` standing for the CA name."""

    crl: str | None = None
    ocsp: str | None = None
    ca_issuers: str | None = None
    delta_crl: str | None = None  # set only while delta CRLs are on

    def for_issuer(self, issuer: str) -> DistributionURLs:
        """Resolve the templates for one CA."""

        def fill(template: str | None) -> str | None:
            return template.replace("{issuer}", issuer) if template else None

        return DistributionURLs(
            fill(self.crl), fill(self.ocsp), fill(self.ca_issuers), fill(self.delta_crl)
        )


@dataclass(frozen=True)
class OCSPConfig:
    """How OCSP answers are signed, cached and refreshed (ca/ocsp.py, ca/ocsp_responders.py)."""

    # the delegated responder certificate of each CA: lifetime, key, and when (as a fraction
    # of its lifetime) a successor replaces it
    responder_validity: dt.timedelta = dt.timedelta(days=7)
    responder_key_type: KeyType = "p256"
    responder_renew_at: float = 2 / 3
    # nextUpdate - thisUpdate of each answer; a cached one is signed again once half of it
    # has passed (the scheduler's job), or by the request that finds it in its last quarter
    response_validity: dt.timedelta = dt.timedelta(hours=1)
    # a request with a nonce gets a fresh signature echoing it (RFC 8954), or the cached answer
    fresh_nonce: bool = False
    # serials an issuer never issued: a signed `unknown`, or the unsigned `unauthorized`
    unknown_unauthorized: bool = False
    # how many cached answers one run of the ocsp-refresh job signs again
    refresh_batch: int = 10_000


@dataclass(frozen=True)
class CAConfig:
    """Trust domain, names, defaults and profiles of one pkiforge installation."""

    trust_domain: str = "pkiforge.internal"
    organization: str = "pkiforge"
    root_key_type: KeyType = "rsa4096"
    intermediate_key_type: KeyType = "rsa2048"
    root_validity: dt.timedelta = dt.timedelta(days=3650)
    intermediate_validity: dt.timedelta = dt.timedelta(days=1825)
    default_issuer: str = "services"
    backdate: dt.timedelta = dt.timedelta(minutes=1)
    crl_next_update: dt.timedelta = dt.timedelta(hours=24)
    root_crl_next_update: dt.timedelta = dt.timedelta(days=180)  # signed at a ceremony
    crl_rebuild_delay: dt.timedelta = dt.timedelta(seconds=1)
    crl_rebuild_within: dt.timedelta = dt.timedelta(seconds=3)
    crl_delta: bool = False
    crl_delta_next_update: dt.timedelta = dt.timedelta(hours=1)
    urls: URLTemplates = field(default_factory=URLTemplates)
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    ocsp: OCSPConfig = field(default_factory=OCSPConfig)
