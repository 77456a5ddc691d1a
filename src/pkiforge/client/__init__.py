"""pkiforge.client: the library services embed (API client, enrollment, mTLS, auto-renewal).

from pkiforge.client import Identity, PkiClient

me = Identity.in_dir("/etc/billing")            # tls.pem, tls.key, ca.pem
with PkiClient("https://pki.internal:8443", verify=me.ca) as pki:
    pki.enroll(token, ["billing.internal"], me)  # key made here, stored 0600
pki = PkiClient("https://pki.internal:8443", identity=me)
pki.enable_auto_renewal(on_renew=lambda cert: live.reload())
pki.peer("ledger").get("/balance")               # mTLS to a discovered service
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pkiforge.client.agent import AgentConfig, Outcome, RenewalAgent
    from pkiforge.client.aio import AsyncPkiClient
    from pkiforge.client.auth import SigningAuth
    from pkiforge.client.autorenew import AutoRenewal, RenewalOptions
    from pkiforge.client.enroll import fetch_root
    from pkiforge.client.errors import ServerError, Unreachable
    from pkiforge.client.hooks import HookFailed
    from pkiforge.client.models import (
        CAInfo,
        Certificate,
        CertificatePage,
        PeerCertificate,
        Revocation,
        RevocationStatus,
        Service,
        WhoAmI,
    )
    from pkiforge.client.payloads import CertificateRequest, ServiceRegistration, ServiceUpdate
    from pkiforge.client.sync import PkiClient
    from pkiforge.client.tls import (
        Identity,
        LiveServerContext,
        client_ssl_context,
        file_client_context,
        server_ssl_context,
        swap_certificate,
    )
    from pkiforge.renewal import Backoff, RenewalPolicy

# name -> submodule of pkiforge.client (or a pkiforge module when it starts with "pkiforge."):
# imported on first use, so that importing one submodule does not import the whole client and
# httpx with it
_EXPORTS = {
    "AgentConfig": "agent",
    "Outcome": "agent",
    "RenewalAgent": "agent",
    "AsyncPkiClient": "aio",
    "SigningAuth": "auth",
    "AutoRenewal": "autorenew",
    "RenewalOptions": "autorenew",
    "fetch_root": "enroll",
    "ServerError": "errors",
    "Unreachable": "errors",
    "HookFailed": "hooks",
    "CAInfo": "models",
    "Certificate": "models",
    "CertificatePage": "models",
    "PeerCertificate": "models",
    "Revocation": "models",
    "RevocationStatus": "models",
    "Service": "models",
    "WhoAmI": "models",
    "CertificateRequest": "payloads",
    "ServiceRegistration": "payloads",
    "ServiceUpdate": "payloads",
    "Backoff": "pkiforge.renewal",
    "RenewalPolicy": "pkiforge.renewal",
    "PkiClient": "sync",
    "Identity": "tls",
    "LiveServerContext": "tls",
    "client_ssl_context": "tls",
    "file_client_context": "tls",
    "server_ssl_context": "tls",
    "swap_certificate": "tls",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    path = module if module.startswith("pkiforge.") else f"{__name__}.{module}"
    value = getattr(importlib.import_module(path), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "AgentConfig",
    "AsyncPkiClient",
    "AutoRenewal",
    "Backoff",
    "CAInfo",
    "Certificate",
    "CertificatePage",
    "CertificateRequest",
    "HookFailed",
    "Identity",
    "LiveServerContext",
    "Outcome",
    "PeerCertificate",
    "PkiClient",
    "RenewalAgent",
    "RenewalOptions",
    "RenewalPolicy",
    "Revocation",
    "RevocationStatus",
    "ServerError",
    "Service",
    "ServiceRegistration",
    "ServiceUpdate",
    "SigningAuth",
    "Unreachable",
    "WhoAmI",
    "client_ssl_context",
    "fetch_root",
    "file_client_context",
    "server_ssl_context",
    "swap_certificate",
]
