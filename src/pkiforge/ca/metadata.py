"""A certificate's metadata: a small JSON object the requester attaches, stored and returned.

Bounded so that one request cannot bloat every row read of the inventory: at most
`MAX_METADATA_BYTES` of compact UTF-8 JSON, objects and arrays nested at most
`MAX_METADATA_DEPTH` deep (the metadata object itself is level 1), string keys only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pkiforge.errors import InvalidInput

MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 4
FIELD = "metadata"


def check_metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-normal copy of `value` (tuples become lists); None means empty.

    Raises:
        InvalidInput (field "metadata"): not a JSON object, a key that is not a string,
            nested too deep, not JSON-encodable, or too large.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput("metadata must be a JSON object", field=FIELD)
    if not value:  # the common case: nothing to encode or bound
        return {}
    _check_shape(value, 1)  # before encoding: it bounds the recursion of json.dumps
    try:
        encoded = json.dumps(
            dict(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be plain JSON: {exc}", field=FIELD) from None
    size = len(encoded.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"metadata is {size} bytes of JSON; at most {MAX_METADATA_BYTES} are allowed",
            field=FIELD,
        )
    clean: dict[str, Any] = json.loads(encoded)
    return clean


def _check_shape(value: Any, depth: int) -> None:
    if isinstance(value, Mapping):
        children: Any = value.values()
        for key in value:
            if not isinstance(key, str):
                raise InvalidInput(
                    f"metadata keys must be strings, not {type(key).__name__}", field=FIELD
                )
    elif isinstance(value, list | tuple):
        children = value
    else:
        return
    if depth > MAX_METADATA_DEPTH:
        raise InvalidInput(
            f"metadata nests deeper than {MAX_METADATA_DEPTH} levels of objects and arrays",
            field=FIELD,
        )
    for child in children:
        _check_shape(child, depth + 1)
