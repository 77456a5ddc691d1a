"""JWS as ACME uses it (RFC 8555 §6.2): flattened JSON, one protected header, checked strictly.

Parsing and the header rules are here; the signature itself is checked by jwcrypto (a
maintained JOSE library). The nonce and the account behind a `kid` are the caller's to check
(`acme/service.py`): this module only says which key a request names.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwk, jws  # type: ignore[import-untyped]

from pkiforge.errors import AcmeError

# RFC 8555 §6.2: servers MUST support ES256 and SHOULD support EdDSA; RS256 for older clients
ALGORITHMS = ("ES256", "ES384", "RS256", "EdDSA")
# the key type (and curve) each algorithm needs: a P-384 key may not sign as ES256
_KEY_FOR = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "RS256": ("RSA", None),
    "EdDSA": ("OKP", "Ed25519"),
}
MIN_RSA_BITS = 2048
EAB_ALGORITHMS = ("HS256", "HS384", "HS512")  # RFC 8555 §7.3.4: a MAC algorithm
_OUTER_FIELDS = {"protected", "payload", "signature"}


@dataclass(frozen=True)
class SignedRequest:
    """A parsed ACME request: its protected header, payload, and the raw JWS to verify."""

    header: dict[str, Any]
    payload: bytes  # b"" for POST-as-GET (RFC 8555 §6.3)
    raw: str

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def nonce(self) -> str:
        return str(self.header["nonce"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return str(kid) if kid is not None else None

    @property
    def jwk(self) -> dict[str, Any] | None:
        key = self.header.get("jwk")
        return dict(key) if key is not None else None

    def json(self) -> dict[str, Any]:
        """The payload as a JSON object; malformed when it is not one."""
        try:
            value = json.loads(self.payload)
        except ValueError:
            raise AcmeError("malformed", "the JWS payload is not JSON") from None
        if not isinstance(value, dict):
            raise AcmeError("malformed", "the JWS payload is not a JSON object")
        return value


def b64decode(text: str, what: str) -> bytes:
    """base64url without padding (RFC 7515 §2); malformed otherwise."""
    if not isinstance(text, str) or "=" in text:
        raise AcmeError("malformed", f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AcmeError("malformed", f"{what} is not unpadded base64url") from None


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse(body: bytes, url: str, *, max_bytes: int, nonce: bool = True) -> SignedRequest:
    """Parse a flattened JWS and check the §6.2 header rules against the request's `url`.

    Raises:
        AcmeError: malformed (not flattened JSON, oversized, unprotected header, no nonce),
            badSignatureAlgorithm (an algorithm not in ALGORITHMS), unauthorized (url
            mismatch), badNonce (no nonce), malformed (both or neither of jwk and kid).
    """
    if len(body) > max_bytes:
        raise AcmeError("malformed", f"the request body exceeds {max_bytes} bytes", status=413)
    try:
        outer = json.loads(body)
    except ValueError:
        raise AcmeError("malformed", "the request body is not a JSON JWS") from None
    if not isinstance(outer, dict) or set(outer) != _OUTER_FIELDS:
        # RFC 8555 §6.2: flattened serialization only, no unprotected header
        raise AcmeError(
            "malformed", "the JWS must be flattened JSON with protected, payload and signature"
        )
    if not all(isinstance(outer[k], str) for k in _OUTER_FIELDS):
        raise AcmeError("malformed", "the JWS members must be strings")
    try:
        header = json.loads(b64decode(outer["protected"], "the protected header"))
    except ValueError:
        raise AcmeError("malformed", "the protected header is not JSON") from None
    if not isinstance(header, dict):
        raise AcmeError("malformed", "the protected header is not a JSON object")
    payload = b64decode(outer["payload"], "the payload")
    b64decode(outer["signature"], "the signature")
    _check_header(header, url, nonce=nonce)
    return SignedRequest(header, payload, body.decode("utf-8", "replace"))


def _check_header(header: dict[str, Any], url: str, *, nonce: bool) -> None:
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AcmeError(
            "badSignatureAlgorithm",
            f"algorithm {alg!r} is not supported; use one of {', '.join(ALGORITHMS)}",
            algorithms=list(ALGORITHMS),
        )
    if "crit" in header or "b64" in header:
        raise AcmeError("malformed", "the JWS header may not carry crit or b64")
    if ("jwk" in header) == ("kid" in header):
        raise AcmeError("malformed", "the JWS header must carry exactly one of jwk and kid")
    if "kid" in header and not isinstance(header["kid"], str):
        raise AcmeError("malformed", "the JWS kid is not a string")
    if "jwk" in header and not isinstance(header["jwk"], dict):
        raise AcmeError("malformed", "the JWS jwk is not a JSON object")
    if not nonce:  # keyChange's inner JWS (§7.3.5) carries none
        if "nonce" in header:
            raise AcmeError("malformed", "the inner JWS may not carry a nonce")
    elif not isinstance(header.get("nonce"), str) or not header["nonce"]:
        raise AcmeError("badNonce", "the JWS header carries no nonce")
    if header.get("url") != url:
        # RFC 8555 §6.4: the url the request was sent to, exactly
        raise AcmeError("unauthorized", "the JWS url does not match the request URL", status=403)


def public_key(value: dict[str, Any]) -> jwk.JWK:
    """A client's public JWK, of a type ALGORITHMS can use.

    Raises:
        AcmeError: malformed (not a public key), badPublicKey (a type or size refused).
    """
    if "d" in value or value.get("kty") == "oct":
        raise AcmeError("malformed", "the jwk must be a public key")
    if value.get("kty") not in {"EC", "RSA", "OKP"}:
        raise AcmeError("badPublicKey", f"key type {value.get('kty')!r} is not supported")
    try:
        key = jwk.JWK(**value)
    except Exception:  # jwcrypto raises a zoo of types for a bad key: all of them mean "bad"
        raise AcmeError("malformed", "the jwk is not a valid public key") from None
    if value["kty"] == "RSA" and key.get_op_key("verify").key_size < MIN_RSA_BITS:
        raise AcmeError("badPublicKey", f"RSA keys must have at least {MIN_RSA_BITS} bits")
    if value["kty"] == "OKP" and value.get("crv") != "Ed25519":
        raise AcmeError("badPublicKey", "OKP keys must be Ed25519")
    return key


def verify(request: SignedRequest, key: jwk.JWK) -> None:
    """Check the signature with `key`, which must suit the header's algorithm.

    Raises:
        AcmeError: badSignatureAlgorithm (the key does not fit the algorithm), malformed
            (the signature does not verify).
    """
    kty, crv = _KEY_FOR[request.alg]
    if key.get("kty") != kty or (crv is not None and key.get("crv") != crv):
        raise AcmeError(
            "badSignatureAlgorithm",
            f"algorithm {request.alg} does not fit a {key.get('kty')} "
            f"{key.get('crv') or ''} key".replace("  ", " "),
            algorithms=list(ALGORITHMS),
        )
    _verify(request.raw, key, request.alg)


def _verify(raw: str, key: jwk.JWK, alg: str) -> None:
    token = jws.JWS()
    try:
        token.deserialize(raw)
        token.verify(key, alg=alg)
    except Exception:  # InvalidJWSSignature, InvalidJWSObject, and the key's own errors
        raise AcmeError("malformed", "the JWS signature does not verify") from None


def same_key(key: jwk.JWK, public: Any) -> bool:
    """Whether the JWK is this (cryptography) public key: their SubjectPublicKeyInfo match."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    try:
        mine = key.get_op_key("verify").public_bytes(*spki)
    except Exception:
        return False
    return bool(hmac.compare_digest(mine, public.public_bytes(*spki)))


def thumbprint(key: jwk.JWK) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: the account key's identity."""
    return str(key.thumbprint())


@dataclass(frozen=True)
class BindingClaim:
    """The external account binding of a newAccount (RFC 8555 §7.3.4), not yet verified."""

    kid: str
    raw: str
    alg: str
    payload: bytes


def binding_claim(value: Any, url: str) -> BindingClaim:
    """Parse `externalAccountBinding`: a flattened JWS with alg HS*, kid and the same url.

    Raises:
        AcmeError: malformed.
    """
    if not isinstance(value, dict) or set(value) != _OUTER_FIELDS:
        raise AcmeError("malformed", "externalAccountBinding must be a flattened JWS")
    if not all(isinstance(value[k], str) for k in _OUTER_FIELDS):
        raise AcmeError("malformed", "externalAccountBinding members must be strings")
    try:
        header = json.loads(b64decode(value["protected"], "the binding's protected header"))
    except ValueError:
        raise AcmeError("malformed", "the binding's protected header is not JSON") from None
    if not isinstance(header, dict):
        raise AcmeError("malformed", "the binding's protected header is not a JSON object")
    if header.get("alg") not in EAB_ALGORITHMS:
        raise AcmeError(
            "malformed", f"externalAccountBinding alg must be one of {', '.join(EAB_ALGORITHMS)}"
        )
    if "nonce" in header or not isinstance(header.get("kid"), str):
        raise AcmeError("malformed", "externalAccountBinding needs a kid and no nonce")
    if header.get("url") != url:
        raise AcmeError("unauthorized", "externalAccountBinding url does not match", status=403)
    payload = b64decode(value["payload"], "the binding's payload")
    return BindingClaim(header["kid"], json.dumps(value), header["alg"], payload)


def verify_binding(claim: BindingClaim, mac_key: bytes, account_jwk: dict[str, Any]) -> None:
    """The binding is MACed with the key `claim.kid` names and carries the account's key.

    Raises:
        AcmeError: unauthorized (bad MAC or another key in the payload).
    """
    secret = jwk.JWK(kty="oct", k=b64encode(mac_key))
    token = jws.JWS()
    try:
        token.deserialize(claim.raw)
        token.verify(secret, alg=claim.alg)
    except Exception:
        raise AcmeError(
            "unauthorized", "externalAccountBinding MAC does not verify", status=403
        ) from None
    try:
        bound = json.loads(claim.payload)
    except ValueError:
        raise AcmeError("malformed", "externalAccountBinding payload is not JSON") from None
    if not isinstance(bound, dict) or not hmac.compare_digest(
        thumbprint_of(bound), thumbprint_of(account_jwk)
    ):
        raise AcmeError("unauthorized", "externalAccountBinding binds another key", status=403)


def thumbprint_of(value: dict[str, Any]) -> str:
    """The thumbprint of a JWK given as JSON; malformed if it is none."""
    try:
        return thumbprint(jwk.JWK(**value))
    except Exception:
        raise AcmeError("malformed", "not a valid JWK") from None
