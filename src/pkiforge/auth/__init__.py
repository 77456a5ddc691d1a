"""Request-signing authentication (RFC 9421 HTTP Message Signatures) for any ASGI app.

    structured.py   RFC 8941 structured field values (the subset signatures need)
    canonical.py    RFC 9421 signature base and Signature/Signature-Input fields (client+server)
    digest.py       RFC 9530 Content-Digest
    algorithms.py   RFC 9421 §3.3 algorithms, key policy, fingerprint, key ids
    keys.py         RegisteredKey, the KeyResolver port, in-memory and TTL-cached resolvers
    nonces.py       the NonceStore port and the in-process store; when a store's memory began
    redis_nonces.py the Redis nonce store: one atomic script checks the memory and sets a nonce
    ratelimit.py    FailureTracker: block an address after repeated failures (in-process, Redis)
    compat.py       the origin documents' "PKI" scheme, with its weak points fixed
    verify.py       RequestVerifier: the one verifier, for the middleware and pkiforge's API
    metrics.py      Prometheus counters and histogram in a caller-owned registry
    middleware.py   SignatureAuthMiddleware (imports Starlette; import it from its module)

The signing side is `pkiforge.client.auth.SigningAuth` (an `httpx.Auth`).
"""

from pkiforge.auth.canonical import HttpRequest
from pkiforge.auth.keys import (
    CachedKeyResolver,
    InMemoryKeyResolver,
    KeyResolver,
    KeyStatus,
    RegisteredKey,
)
from pkiforge.auth.nonces import InMemoryNonceStore, NonceStore
from pkiforge.auth.redis_nonces import RedisNonceStore
from pkiforge.auth.verify import RequestVerifier, VerifiedIdentity, VerifierPolicy

__all__ = [
    "CachedKeyResolver",
    "HttpRequest",
    "InMemoryKeyResolver",
    "InMemoryNonceStore",
    "KeyResolver",
    "KeyStatus",
    "NonceStore",
    "RedisNonceStore",
    "RegisteredKey",
    "RequestVerifier",
    "VerifiedIdentity",
    "VerifierPolicy",
]
