"""A key store that opens sealed keys (OCSP responders) but never a CA key: for a process that
must not sign with one (`pkiforge publish serve`), whatever its host holds."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkiforge.errors import Conflict
from pkiforge.signers.file import FileKeyStore

_REFUSED = "this process does not use CA keys (it publishes what the database holds)"


class SealedOnlyKeys:
    """`seal`/`unseal` as the file key store does them; CA keys are refused as if offline."""

    def __init__(self, inner: FileKeyStore) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return f"SealedOnlyKeys({self._inner!r})"

    def save(
        self, name: str, key: CertificateIssuerPrivateKeyTypes, location: str | None = None
    ) -> str:
        raise Conflict(_REFUSED, field="key")

    def load(self, key_ref: str) -> CertificateIssuerPrivateKeyTypes:
        """Raises Conflict: what a CA whose key is offline raises, so callers fall back to
        what is stored (the CRL until its nextUpdate, the responder until it expires)."""
        raise Conflict(_REFUSED, field="key")

    def set_aside(self, name: str, location: str | None = None) -> str | None:
        return None

    def seal(self, key: CertificateIssuerPrivateKeyTypes) -> bytes:
        return self._inner.seal(key)

    def unseal(self, data: bytes) -> CertificateIssuerPrivateKeyTypes:
        return self._inner.unseal(data)
