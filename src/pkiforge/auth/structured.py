"""RFC 8941 Structured Field Values: the subset HTTP Message Signatures and digests need.

Parses and serialises Items (Integer, Decimal, String, Token, Byte Sequence, Boolean) with
Parameters, Inner Lists, Lists and Dictionaries. Every malformed input raises
`InvalidInput` naming what was wrong; nothing is guessed or repaired.
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from pkiforge.errors import InvalidInput

__all__ = [
    "BareItem",
    "Dictionary",
    "InnerList",
    "Item",
    "Member",
    "Params",
    "Token",
    "parse_dictionary",
    "parse_item",
    "parse_list",
    "serialize_bare_item",
    "serialize_dictionary",
    "serialize_inner_list",
    "serialize_item",
    "serialize_list",
    "serialize_member",
    "serialize_params",
]


class Token(str):
    """An RFC 8941 §3.3.4 Token, kept apart from a String of the same text."""

    __slots__ = ()


BareItem = bool | int | Decimal | str | bytes  # str includes Token
Params = dict[str, BareItem]


@dataclass(slots=True)
class Item:
    """A bare item with its parameters (RFC 8941 §3.3)."""

    value: BareItem
    params: Params = field(default_factory=dict)


@dataclass(slots=True)
class InnerList:
    """A parenthesised list of items with its own parameters (RFC 8941 §3.1.1)."""

    items: list[Item] = field(default_factory=list)
    params: Params = field(default_factory=dict)


Member = Item | InnerList
Dictionary = dict[str, Member]

_B64_CHARS = frozenset(string.ascii_letters + string.digits + "+/=")
_MAX_INT = 999_999_999_999_999


# runs of characters that need no per-character decision (speed: one regex step per run)
_STRING_RUN = re.compile(r"[ !#-\[\]-~]+")  # printable ASCII except '"' and '\\'
_SP_RUN = re.compile(r" *")
_SIMPLE_STRING = re.compile(r'"([ !#-\[\]-~]*)"')
_NUMBER = re.compile(r"-?[0-9]*(?:\.[0-9]*)?")  # §4.2.4 steps 5-7; the checks follow
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_PRINTABLE = re.compile(r"[ -~]*")
# parameter names RFC 9421 and RFC 9530 use: known good, so serialising them needs no check
_COMMON_KEYS = frozenset(
    {"created", "expires", "nonce", "keyid", "alg", "tag", "sf", "key", "bs", "req", "tr", "name"}
)


def _fail(reason: str) -> InvalidInput:
    return InvalidInput(f"malformed structured field: {reason}")


class _Parser:
    """A cursor over one field value; each method implements one RFC 8941 §4.2 algorithm."""

    def __init__(self, text: str) -> None:
        if not text.isascii():
            raise _fail("non-ASCII characters")
        self.s = text.strip(" ")  # §4.2 step 2: discard leading and trailing SP
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i : self.i + 1]  # "" at the end

    def take(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def skip_sp(self) -> None:
        self.i = _SP_RUN.match(self.s, self.i).end()  # type: ignore[union-attr]

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t"):
            self.i += 1

    def done(self) -> bool:
        return self.i >= len(self.s)

    def expect_end(self) -> None:
        if not self.done():
            raise _fail(f"unexpected {self.peek()!r} at position {self.i}")

    # §4.2.2 Dictionary
    def dictionary(self) -> Dictionary:
        result: Dictionary = {}
        while not self.done():
            key = self.key()
            if self.peek() == "=":
                self.i += 1
                result[key] = self.item_or_inner_list()
            else:
                result[key] = Item(True, self.params())
            if self.list_member_end():
                break
        return result

    # §4.2.1 List
    def list(self) -> list[Member]:
        result: list[Member] = []
        while not self.done():
            result.append(self.item_or_inner_list())
            if self.list_member_end():
                break
        return result

    def list_member_end(self) -> bool:
        """Consume the separator after a member; True when the input is exhausted."""
        self.skip_ows()
        if self.done():
            return True
        if self.take() != ",":
            raise _fail(f"expected ',' at position {self.i - 1}")
        self.skip_ows()
        if self.done():
            raise _fail("trailing comma")
        return False

    def item_or_inner_list(self) -> Member:
        if self.peek() == "(":
            return self.inner_list()
        return self.item()

    # §4.2.1.2 Inner List
    def inner_list(self) -> InnerList:
        self.i += 1  # "("
        items: list[Item] = []
        while not self.done():
            self.skip_sp()
            if self.peek() == ")":
                self.i += 1
                return InnerList(items, self.params())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise _fail(f"expected ' ' or ')' in inner list at position {self.i}")
        raise _fail("unterminated inner list")

    # §4.2.3 Item
    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    # §4.2.3.2 Parameters
    def params(self) -> Params:
        result: Params = {}
        while self.peek() == ";":
            self.i += 1
            self.skip_sp()
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare_item()
            result[key] = value
        return result

    # §4.2.3.3 Key
    def key(self) -> str:
        start = self.i
        match = _KEY.match(self.s, start)
        if match is None:
            raise _fail(f"key must start with a lowercase letter or '*' at position {start}")
        self.i = match.end()
        return match.group()

    # §4.2.3.1 Bare Item
    def bare_item(self) -> BareItem:
        ch = self.peek()
        if ch == '"':  # strings first: signature parameters are mostly strings
            return self.string()
        if ch == "-" or ch.isdigit():
            return self.number()
        if ch == ":":
            return self.byte_sequence()
        if ch == "?":
            return self.boolean()
        if ch and (ch.isalpha() or ch == "*"):
            return self.token()
        raise _fail(f"unexpected {ch or 'end of input'!r} where an item was expected")

    # §4.2.4 Integer or Decimal
    def number(self) -> int | Decimal:
        start = self.i
        self.i = _NUMBER.match(self.s, start).end()  # type: ignore[union-attr]
        text = self.s[start : self.i]
        digits = text.lstrip("-")
        if not digits[:1].isdigit():
            raise _fail("a number needs a digit")
        if "." not in digits:
            if len(digits) > 15:
                raise _fail("integer longer than 15 digits")
            return int(text)
        whole, _, frac = digits.partition(".")
        if len(whole) > 12 or not 1 <= len(frac) <= 3:
            raise _fail("decimal needs at most 12 integer and 1 to 3 fractional digits")
        return Decimal(text)

    # §4.2.5 String
    def string(self) -> str:
        simple = _SIMPLE_STRING.match(self.s, self.i)  # no escapes: the usual case, one step
        if simple is not None:
            self.i = simple.end()
            return simple.group(1)
        self.i += 1  # opening quote
        out: list[str] = []
        while not self.done():
            run = _STRING_RUN.match(self.s, self.i)  # plain characters in one step
            if run is not None and run.end() > self.i:
                out.append(run.group())
                self.i = run.end()
                continue
            ch = self.take()
            if ch == "\\":
                nxt = self.take()
                if nxt not in ('"', "\\"):
                    raise _fail("only '\\\"' and '\\\\' escapes are allowed in a string")
                out.append(nxt)
            elif ch == '"':
                return "".join(out)
            elif not " " <= ch <= "~":
                raise _fail("control character in a string")
            else:
                out.append(ch)
        raise _fail("unterminated string")

    # §4.2.6 Token
    def token(self) -> Token:
        start = self.i
        self.i = _TOKEN.match(self.s, start).end()  # type: ignore[union-attr]
        return Token(self.s[start : self.i])

    # §4.2.7 Byte Sequence
    def byte_sequence(self) -> bytes:
        self.i += 1  # opening colon
        end = self.s.find(":", self.i)
        if end < 0:
            raise _fail("unterminated byte sequence")
        encoded = self.s[self.i : end]
        self.i = end + 1
        if not set(encoded) <= _B64_CHARS:
            raise _fail("byte sequence is not base64")
        try:
            # §4.2.7: parsers SHOULD NOT fail when "=" padding is absent.
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise _fail("byte sequence is not valid base64") from exc

    # §4.2.8 Boolean
    def boolean(self) -> bool:
        self.i += 1
        ch = self.take()
        if ch not in ("0", "1"):
            raise _fail("a boolean must be ?0 or ?1")
        return ch == "1"


def parse_dictionary(text: str) -> Dictionary:
    """Parse a Dictionary field value (RFC 8941 §4.2.2).

    Raises:
        InvalidInput: the value is not a well-formed Dictionary.
    """
    parser = _Parser(text)
    result = parser.dictionary()
    parser.expect_end()
    return result


def parse_list(text: str) -> list[Member]:
    """Parse a List field value (RFC 8941 §4.2.1).

    Raises:
        InvalidInput: the value is not a well-formed List.
    """
    parser = _Parser(text)
    result = parser.list()
    parser.expect_end()
    return result


def parse_item(text: str) -> Item:
    """Parse an Item field value (RFC 8941 §4.2.3).

    Raises:
        InvalidInput: the value is not a well-formed Item.
    """
    parser = _Parser(text)
    result = parser.item()
    parser.expect_end()
    return result


# Serialisation, RFC 8941 §4.1


def _serialize_key(key: str) -> str:
    if key not in _COMMON_KEYS and _KEY.fullmatch(key) is None:
        raise InvalidInput(f"invalid structured field key {key!r}")
    return key


def serialize_bare_item(value: BareItem) -> str:
    """Serialise one bare item (RFC 8941 §4.1.3.1).

    Raises:
        InvalidInput: the value cannot be represented.
    """
    if isinstance(value, str):  # the usual case first
        if isinstance(value, Token):
            if _TOKEN.fullmatch(value) is None:
                raise InvalidInput(f"invalid token {value!r}")
            return str(value)
        if _PRINTABLE.fullmatch(value) is None:
            raise InvalidInput("strings may hold only printable ASCII")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise InvalidInput("integer out of the structured field range")
        return str(value)
    if isinstance(value, Decimal):
        return _serialize_decimal(value)
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    raise TypeError(f"cannot serialise {type(value).__name__} as a structured field item")


def _serialize_decimal(value: Decimal) -> str:
    rounded = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)
    if abs(rounded) >= Decimal(10**12):
        raise InvalidInput("decimal out of the structured field range")
    text = format(rounded, "f").rstrip("0")
    return text + "0" if text.endswith(".") else text


def serialize_params(params: Params) -> str:
    """Serialise parameters (RFC 8941 §4.1.1.2)."""
    out = []
    for key, value in params.items():
        out.append(";" + _serialize_key(key))
        if value is not True:
            out.append("=" + serialize_bare_item(value))
    return "".join(out)


def serialize_item(item: Item) -> str:
    """Serialise an item with its parameters (RFC 8941 §4.1.3)."""
    return serialize_bare_item(item.value) + serialize_params(item.params)


def serialize_inner_list(inner: InnerList) -> str:
    """Serialise an inner list (RFC 8941 §4.1.1.1)."""
    body = " ".join(serialize_item(item) for item in inner.items)
    return f"({body}){serialize_params(inner.params)}"


def serialize_member(member: Member) -> str:
    """Serialise an item or an inner list."""
    if isinstance(member, InnerList):
        return serialize_inner_list(member)
    return serialize_item(member)


def serialize_list(members: list[Member]) -> str:
    """Serialise a List (RFC 8941 §4.1.1)."""
    return ", ".join(serialize_member(member) for member in members)


def serialize_dictionary(dictionary: Dictionary) -> str:
    """Serialise a Dictionary (RFC 8941 §4.1.2)."""
    out = []
    for key, member in dictionary.items():
        name = _serialize_key(key)
        if isinstance(member, Item) and member.value is True:
            out.append(name + serialize_params(member.params))
        else:
            out.append(f"{name}={serialize_member(member)}")
    return ", ".join(out)
