"""RFC 9530 Content-Digest: create and check digests of the message content."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from pkiforge.auth.structured import Item, parse_dictionary, serialize_dictionary
from pkiforge.errors import AuthenticationFailed, InvalidInput

__all__ = ["DIGEST_ALGORITHMS", "content_digest", "verify_content_digest"]

# RFC 9530 §5 / §7.2: the registered algorithms with status "Active"; the deprecated ones
# (md5, sha, unixsum, unixcksum, adler, crc32c) are ignored, never trusted.
DIGEST_ALGORITHMS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda data: hashlib.sha256(data).digest(),
    "sha-512": lambda data: hashlib.sha512(data).digest(),
}


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The Content-Digest field value for `body` (RFC 9530 §2).

    Raises:
        InvalidInput: the algorithm is not sha-256 or sha-512.
    """
    if algorithm not in DIGEST_ALGORITHMS:
        raise InvalidInput(
            f"unsupported digest algorithm {algorithm!r}; use sha-256 or sha-512",
            field="algorithm",
        )
    return serialize_dictionary({algorithm: Item(DIGEST_ALGORITHMS[algorithm](body))})


def verify_content_digest(field_value: str, body: bytes) -> None:
    """Check a Content-Digest value against `body`; every supported member must match.

    Raises:
        AuthenticationFailed: the value is malformed, holds no supported algorithm,
            or a digest does not match the body.
    """
    try:
        members = parse_dictionary(field_value)
    except InvalidInput as exc:
        raise AuthenticationFailed(f"malformed content-digest: {exc.message}") from exc
    checked = 0
    for algorithm, member in members.items():
        compute = DIGEST_ALGORITHMS.get(algorithm)
        if compute is None:
            continue  # RFC 9530 §2: unknown algorithms are ignored
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise AuthenticationFailed(f"content-digest {algorithm} must be a byte sequence")
        if not hmac.compare_digest(member.value, compute(body)):
            raise AuthenticationFailed("content-digest does not match body")
        checked += 1
    if not checked:
        raise AuthenticationFailed("content-digest holds no supported algorithm (sha-256, sha-512)")
