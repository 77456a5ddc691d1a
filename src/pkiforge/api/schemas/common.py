"""Wire types more than one resource shares: their constraints are part of the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BeforeValidator, Field
from starlette.convertors import StringConvertor, register_url_convertor

# what `parse_serial` reads: up to 40 hex digits (20 octets, RFC 5280 §4.1.2.2), maybe after
# `0x`, maybe in colon-separated octets
SERIAL_PATTERN = r"^(?:0[xX])?(?:[0-9A-Fa-f]{1,40}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){1,19})$"
# a CA name, or a rotated CA's successor `<name>.<generation>` (ca/generations.py)
CA_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}(\.[1-9][0-9]{0,5})?$"
# PEM framing (RFC 7468 §2); whether the content is a CSR or a key is checked after parsing
PEM_PATTERN = r"^\s*-----BEGIN [A-Z0-9 ]+-----[\s\S]+-----END [A-Z0-9 ]+-----\s*$"
# an absolute ASCII URI: a scheme (RFC 3986 §3.1), then printable characters without spaces
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]+$"
# free text that goes into records and the audit trail: no control characters
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# RFC 3339 §5.6 date-time: what the document's `format: date-time` promises, and no more
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")


def matching(pattern: str, expected: str) -> AfterValidator:
    """Check `pattern` with a message people can read (pydantic's would quote the regex)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"expected {expected}")
        return value

    return AfterValidator(check)


def documented(pattern: str) -> dict[str, object]:
    """The `pattern` a `matching` check enforces, for the JSON schema."""
    return {"pattern": pattern}


class SerialConvertor(StringConvertor):
    """`{serial:serial}` in a route: only what SERIAL_PATTERN accepts reaches the route, so
    `/certificates/request` is never read as a serial (a GET there is a 405, not a 422)."""

    regex = SERIAL_PATTERN.removeprefix("^").removesuffix("$")


register_url_convertor("serial", SerialConvertor())
# the path must spell it `{serial:serial}`; the document keeps the pattern for clients
Serial = Annotated[
    str, Path(description="hex serial number", json_schema_extra=documented(SERIAL_PATTERN))
]
Pem = Annotated[
    str,
    Field(json_schema_extra=documented(PEM_PATTERN)),
    matching(PEM_PATTERN, "a PEM block: -----BEGIN ...----- base64 -----END ...-----"),
]
Uri = Annotated[
    str,
    Field(json_schema_extra=documented(URI_PATTERN)),
    matching(URI_PATTERN, "an absolute URI (scheme:...) of printable ASCII without spaces"),
]

Text = Annotated[
    str,
    Field(json_schema_extra=documented(TEXT_PATTERN)),
    matching(TEXT_PATTERN, "text without control characters"),
]


def _rfc3339(value: object) -> object:
    """Refuse what pydantic would also read as a date-time: Unix times, dates, no offset."""
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time such as 2027-01-31T12:00:00Z")
    return value


DateTime = Annotated[dt.datetime, BeforeValidator(_rfc3339)]


def _json_integer(value: object) -> object:
    if isinstance(value, str | bool):
        raise ValueError("expected an integer")
    return value


# refuses what pydantic would also read as an integer: strings and booleans (JSON Schema
# `integer` does take 5.0); bounds go before it in `Annotated`, or they leave the JSON schema
JSON_INTEGER = BeforeValidator(_json_integer)
