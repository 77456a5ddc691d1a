"""Key backends: how a `key_ref` recorded with a CA turns back into a private key.

A reference is `<scheme>:<location>`; `file:` is the encrypted-PEM backend (signers/file.py).
Other custody (PKCS#11 HSMs, cloud KMS) plugs in as another scheme implementing `KeyStore`.
"""

from __future__ import annotations

from pkiforge.errors import InvalidInput


def split_ref(key_ref: str) -> tuple[str, str]:
    """`file:ca/root/key.pem` -> (`file`, `ca/root/key.pem`); a bare path means `file:`.

    Raises:
        InvalidInput: empty reference.
    """
    scheme, sep, rest = key_ref.partition(":")
    if not sep or len(scheme) == 1:  # a bare path (or a Windows drive letter)
        scheme, rest = "file", key_ref
    if not rest:
        raise InvalidInput("empty key reference", field="key")
    return scheme, rest
