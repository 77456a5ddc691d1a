"""One exception tree for pkiforge; errors carry data, never secrets.

    PkiError
    ├── InvalidInput (ValueError)          a value the caller sent is wrong; `field` names it
    │   ├── InvalidCSR                     unparsable CSR, or its signature does not verify
    │   ├── InvalidName                    a DNS/IP/URI name or service id is malformed
    │   ├── WeakKey                        key type or size refused by the key policy
    │   └── PolicyViolation                allowed in form, refused by policy (validity, wildcard)
    ├── NotFound                           unknown CA, serial, service, key
    ├── Conflict                           already exists, or wrong state (revoke twice, CA exists)
    ├── AuthenticationFailed               no or bad credentials (certificate, signature, token)
    ├── PermissionDenied                   authenticated, but not allowed
    ├── RateLimited                        too many requests; `retry_after` seconds
    ├── BadPassphrase                      a CA key could not be decrypted with the passphrase
    ├── StoreUnavailable                   the database or nonce store cannot answer (fail closed);
    │                                      `internal` holds the cause, for logs only
    │   └── StorageFull                    free disk space is below the reserve: no new writes
    ├── IntegrityError                     audit chain or stored data does not check out
    ├── AcmeError                          an ACME request refused; `kind` is its RFC 8555 type
    ├── Unreachable                        (client) the server could not be reached
    ├── UntrustedServer                    (client) the server's TLS certificate does not verify
    └── ServerError                        (client) the server answered with an unexpected status

Only `api/problems.py` maps these to HTTP and only `cli/` maps them to exit codes.
"""

from __future__ import annotations

from typing import Any


class PkiError(Exception):
    """Base of every pkiforge error; `str()` is safe to show to a user."""

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = data

    def __str__(self) -> str:
        return self.message


class InvalidInput(PkiError, ValueError):
    """A value the caller supplied is wrong; `field` names which one."""

    def __init__(self, message: str, *, field: str | None = None, **data: Any) -> None:
        super().__init__(message, field=field, **data)
        self.field = field


class InvalidCSR(InvalidInput):
    """The CSR cannot be parsed or its self-signature does not verify."""


class InvalidName(InvalidInput):
    """A DNS name, IP address, URI or service id is malformed."""


class WeakKey(InvalidInput):
    """The public key's type or size is refused by the key policy."""


class PolicyViolation(InvalidInput):
    """The request is well-formed but the issuance policy refuses it."""


class NotFound(PkiError):
    """An object (CA, certificate, service, key) does not exist."""


class Conflict(PkiError):
    """The object already exists or is in a state that forbids the operation."""


class AuthenticationFailed(PkiError):
    """Credentials are missing or do not verify; `reason` says which check failed."""


class PermissionDenied(PkiError):
    """The caller is authenticated but not allowed to do this."""


class RateLimited(PkiError):
    """Too many requests; retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int, **data: Any) -> None:
        super().__init__(message, retry_after=retry_after, **data)
        self.retry_after = retry_after


class BadPassphrase(PkiError):
    """A CA private key could not be decrypted with the given passphrase."""


class StoreUnavailable(PkiError):
    """A backing store cannot answer; callers must refuse rather than proceed.

    `str()` is the stable message a client is shown ("database unavailable"); `internal` is
    the cause as the driver gave it, which may name hosts and ports: for the server's log and
    the operator's own CLI, never for a response.
    """

    def __init__(self, message: str, *, internal: str | None = None, **data: Any) -> None:
        super().__init__(message, **data)
        self.internal = internal


class StorageFull(StoreUnavailable):
    """Free space under the database is below the configured reserve; writes are refused."""


class IntegrityError(PkiError):
    """Stored data fails an integrity check (audit chain, certificate/key mismatch)."""


class Unreachable(PkiError):
    """The server could not be reached or did not answer (DNS, refused, TLS, timeout)."""


class UntrustedServer(PkiError):
    """The server's TLS certificate does not verify against the CAs the client trusts (or is
    not for its host): a trust configuration to fix, not an outage to wait out."""


class ServerError(PkiError):
    """The server answered with an unexpected status (5xx, or a body that is not ours)."""


class AcmeError(PkiError):
    """An ACME request refused with an RFC 8555 §6.7 error type (`kind`: `badNonce`, ...).

    Only the ACME router (api/acme/problems.py) renders it, as `urn:ietf:params:acme:error:<kind>`.
    """

    def __init__(self, kind: str, message: str, *, status: int = 400, **data: Any) -> None:
        super().__init__(message, **data)
        self.kind = kind
        self.status = status
