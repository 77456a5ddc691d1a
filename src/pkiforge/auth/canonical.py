"""RFC 9421 HTTP Message Signatures: signature base and Signature/Signature-Input fields.

Shared by the signing client (`pkiforge.client.auth`) and the server-side verifier, so that
both build the signature base from the same code. Only requests are supported; `@status`
and the `req` parameter (responses) are refused.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pkiforge.auth.structured import (
    BareItem,
    InnerList,
    Item,
    Params,
    Token,
    parse_dictionary,
    serialize_dictionary,
    serialize_inner_list,
    serialize_item,
    serialize_list,
    serialize_member,
)
from pkiforge.errors import InvalidInput

__all__ = [
    "DERIVED_COMPONENTS",
    "HttpRequest",
    "SignatureEntry",
    "component_value",
    "covered_components",
    "field_value",
    "parse_signatures",
    "signature_base",
    "signature_fields",
    "split_target_uri",
]

DERIVED_COMPONENTS = frozenset(
    {
        "@method",
        "@target-uri",
        "@authority",
        "@scheme",
        "@request-target",
        "@path",
        "@query",
        "@query-param",
    }
)
_OBS_FOLD = re.compile(r"[ \t]*\r\n[ \t]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Fields whose structured type is known, for the `sf` and `key` parameters (RFC 9421 §2.1.1).
_DICTIONARY_FIELDS = frozenset(
    {"content-digest", "repr-digest", "want-content-digest", "signature", "signature-input"}
)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The parts of an HTTP request that a signature can cover."""

    method: str
    target_uri: str
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""

    def field_lines(self, name: str) -> list[str]:
        """Every field line value named `name` (case-insensitive), in message order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True, slots=True)
class TargetParts:
    """A target URI split and normalised (RFC 9110 §4.2.3: lower-case, no default port)."""

    scheme: str
    authority: str
    path: str
    query: str


@dataclass(frozen=True, slots=True)
class SignatureEntry:
    """One labelled signature: its covered components and parameters, and its bytes."""

    label: str
    covered: InnerList
    signature: bytes
    params: Params = field(default_factory=dict)


def _bad(reason: str) -> InvalidInput:
    return InvalidInput(reason, field="Signature-Input")


def split_target_uri(uri: str) -> TargetParts:
    """Split an absolute http(s) target URI into normalised parts.

    Raises:
        InvalidInput: the URI is not an absolute http or https URI.
    """
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise _bad(f"target URI is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise _bad("target URI must be an absolute http or https URI")
    host = parts.hostname  # already lower-cased, brackets removed
    if ":" in host:
        host = f"[{host}]"
    authority = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return TargetParts(scheme, authority, parts.path or "/", parts.query)


def _query_param(target: TargetParts, params: Params) -> str:
    # RFC 9421 §2.2.8: parse as application/x-www-form-urlencoded, re-encode name and value.
    name = params.get("name")
    if not isinstance(name, str) or isinstance(name, Token) or set(params) != {"name"}:
        raise _bad('@query-param needs exactly one String parameter "name"')
    values = [
        value
        for key, value in urllib.parse.parse_qsl(target.query, keep_blank_values=True)
        if _form_encode(key) == name
    ]
    if len(values) != 1:
        raise _bad(f"query parameter {name!r} must occur exactly once, found {len(values)}")
    return _form_encode(values[0])


def _form_encode(text: str) -> str:
    return urllib.parse.quote(text, safe="*-._").replace("~", "%7E")


def _derived_value(request: HttpRequest, name: str, params: Params) -> str:
    """The value of a derived component (RFC 9421 §2.2)."""
    if name not in DERIVED_COMPONENTS:
        raise _bad(f"unsupported derived component {name}")
    if params and name != "@query-param":
        raise _bad(f"derived component {name} takes no parameters")
    if name == "@method":
        return request.method  # §2.2.1: as is, case-sensitive
    target = split_target_uri(request.target_uri)
    query = f"?{target.query}" if target.query else ""
    values = {
        "@target-uri": f"{target.scheme}://{target.authority}{target.path}{query}",  # §2.2.2
        "@authority": target.authority,  # §2.2.3
        "@scheme": target.scheme,  # §2.2.4
        "@request-target": target.path + query,  # §2.2.5, origin-form
        "@path": target.path,  # §2.2.6
        "@query": f"?{target.query}",  # §2.2.7: a lone "?" when there is no query
    }
    if name == "@query-param":
        return _query_param(target, params)
    return values[name]


def field_value(request: HttpRequest, name: str, params: Params | None = None) -> str:
    """The value of an HTTP field component (RFC 9421 §2.1).

    Raises:
        InvalidInput: the field is absent or the parameters cannot be applied.
    """
    params = params or {}
    lines = request.field_lines(name)
    if not lines:
        raise _bad(f"covered header field {name!r} is missing")
    unknown = set(params) - {"sf", "key", "bs"}
    if unknown:
        raise _bad(f"unsupported parameter(s) {sorted(unknown)} on field {name!r}")
    if "bs" in params:
        # §2.1.3: each field line wrapped separately as a Byte Sequence.
        if len(params) != 1:
            raise _bad('"bs" cannot be combined with other parameters')
        try:
            return serialize_list([Item(_trim(line).encode("latin-1")) for line in lines])
        except UnicodeEncodeError as exc:
            raise _bad(f"field {name!r} is not Latin-1 and cannot be wrapped with bs") from exc
    combined = ", ".join(_trim(line) for line in lines)
    if not params:
        return combined
    if name not in _DICTIONARY_FIELDS:
        raise _bad(f"field {name!r} has no known structured type for sf/key")
    dictionary = parse_dictionary(combined)
    if "key" not in params:
        return serialize_dictionary(dictionary)  # §2.1.1
    key = params["key"]
    if not isinstance(key, str) or key not in dictionary:
        raise _bad(f"field {name!r} has no member {key!r}")
    return serialize_member(dictionary[key])  # §2.1.2


def _trim(value: str) -> str:
    # §2.1: strip surrounding whitespace; obsolete line folding becomes one space. Any other
    # CR or LF is left in place, so that component_value refuses it.
    return _OBS_FOLD.sub(" ", value).strip(" \t")


def component_value(request: HttpRequest, component: Item) -> str:
    """The value of one covered component.

    Raises:
        InvalidInput: the component is unknown, malformed or absent from the request.
    """
    name = component.value
    if not isinstance(name, str) or isinstance(name, Token):
        raise _bad("component identifiers must be Strings")
    if "req" in component.params or "tr" in component.params:
        raise _bad(f"parameters req/tr are not supported on request component {name!r}")
    if name.startswith("@"):
        value = _derived_value(request, name, component.params)
    elif name != name.lower() or not name:
        raise _bad(f"field component names must be lower-case, got {name!r}")
    else:
        value = field_value(request, name, component.params)
    if "\r" in value or "\n" in value or not value.isascii():
        raise _bad(f"value of component {name!r} holds newlines or non-ASCII characters")
    return value


def signature_base(request: HttpRequest, covered: InnerList) -> bytes:
    """Build the signature base for `covered` over `request` (RFC 9421 §2.5).

    `covered.params` are the signature parameters; they form the @signature-params line.

    Raises:
        InvalidInput: a component is duplicated, unsupported or absent.
    """
    lines: list[str] = []
    seen: set[tuple[BareItem, frozenset[tuple[str, BareItem]]]] = set()
    for component in covered.items:
        if component.value == "@signature-params":
            raise _bad("@signature-params cannot be a covered component")
        identity = (component.value, frozenset(component.params.items()))
        if identity in seen:
            raise _bad(f"component {serialize_item(component)} is covered twice")
        seen.add(identity)
        lines.append(f"{serialize_item(component)}: {component_value(request, component)}")
    lines.append(f'"@signature-params": {serialize_inner_list(covered)}')
    return "\n".join(lines).encode("ascii")


def covered_components(names: Iterable[str | Item], params: Params) -> InnerList:
    """An inner list of component identifiers carrying the signature parameters."""
    items = [name if isinstance(name, Item) else Item(name) for name in names]
    return InnerList(items, dict(params))


def signature_fields(label: str, covered: InnerList, signature: bytes) -> list[tuple[str, str]]:
    """The Signature-Input and Signature field lines for one signature (RFC 9421 §4)."""
    return [
        ("Signature-Input", serialize_dictionary({label: covered})),
        ("Signature", serialize_dictionary({label: Item(signature)})),
    ]


def _dictionary_field(request: HttpRequest, name: str) -> dict[str, Item | InnerList]:
    lines = request.field_lines(name)
    if not lines:
        raise InvalidInput(f"missing {name}", field=name)
    try:
        return parse_dictionary(", ".join(lines))
    except InvalidInput as exc:
        raise InvalidInput(f"malformed {name}: {exc.message}", field=name) from exc


def parse_signatures(request: HttpRequest) -> dict[str, SignatureEntry]:
    """Every labelled signature in the request, paired across both fields (RFC 9421 §4.1-4.2).

    Raises:
        InvalidInput: a field is missing or malformed, or the labels do not pair up.
    """
    inputs = _dictionary_field(request, "Signature-Input")
    signatures = _dictionary_field(request, "Signature")
    if set(inputs) != set(signatures):
        raise InvalidInput("Signature-Input and Signature carry different labels")
    entries: dict[str, SignatureEntry] = {}
    for label, covered in inputs.items():
        signature = signatures[label]
        if not isinstance(covered, InnerList):
            raise InvalidInput(f"Signature-Input member {label!r} must be an inner list")
        if not isinstance(signature, Item) or not isinstance(signature.value, bytes):
            raise InvalidInput(f"Signature member {label!r} must be a byte sequence")
        entries[label] = SignatureEntry(label, covered, signature.value, covered.params)
    return entries
