"""An identity's CA bundle: fetched from the PKI, checked against what is trusted here, and
installed in one step.

The bundle (`GET /api/v1/ca/bundle`) holds the root and every intermediate a peer may meet,
including the predecessors a rotation left. It is accepted only if it keeps every root this
host trusts now and every other certificate in it is a CA certificate signed by one of them:
a server can add the successor of a rotated intermediate, never a trust anchor of its own.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.errors import IntegrityError
from pkiforge.pairs import write_atomic

__all__ = ["checked_bundle", "install_bundle"]


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signed_by_one_of(cert: x509.Certificate, anchors: list[x509.Certificate]) -> bool:
    for anchor in anchors:
        if anchor.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def checked_bundle(trusted_pem: bytes, fetched_pem: bytes) -> bytes:
    """The fetched bundle as PEM, if it may replace `trusted_pem`.

    Raises:
        IntegrityError: not PEM certificates, a root trusted here is missing, or a
            certificate is neither such a root nor a CA certificate one of them signed.
    """
    try:
        trusted = x509.load_pem_x509_certificates(trusted_pem)
        fetched = x509.load_pem_x509_certificates(fetched_pem)
    except ValueError:
        raise IntegrityError("the CA bundle is not a list of PEM certificates") from None
    anchors = [c for c in trusted if _self_signed(c)]
    if not anchors:
        raise IntegrityError("the CA bundle here holds no root to check a new one against")
    missing = [a for a in anchors if a not in fetched]
    if missing:
        raise IntegrityError(
            "the server's CA bundle leaves out the root trusted here "
            f"({missing[0].subject.rfc4514_string()}); keeping the bundle as it is"
        )
    for cert in fetched:
        if cert in anchors:
            continue
        if not _is_ca(cert) or not _signed_by_one_of(cert, anchors):
            raise IntegrityError(
                f"the server's CA bundle holds {cert.subject.rfc4514_string()}, which no root "
                "trusted here signed; keeping the bundle as it is"
            )
    return b"".join(c.public_bytes(Encoding.PEM) for c in fetched)


def install_bundle(path: Path, fetched_pem: bytes) -> bool:
    """Replace the bundle at `path` with the fetched one if it passes `checked_bundle` and
    differs; True if it was replaced.

    Raises:
        IntegrityError: from `checked_bundle`. OSError: the file cannot be read or written.
    """
    current = path.read_bytes()
    fresh = checked_bundle(current, fetched_pem)
    if fresh == current:
        return False
    write_atomic(path, fresh)
    return True
