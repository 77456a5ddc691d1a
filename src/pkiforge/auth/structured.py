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

_LCALPHA = frozenset(string.ascii_lowercase)
_KEY_CHARS = _LCALPHA | frozenset(string.digits) | frozenset("_-.*")
_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_TOKEN_CHARS = _TCHAR | frozenset(":/")
_B64_CHARS = frozenset(string.ascii_letters + string.digits + "+/=")
_MAX_INT = 999_999_999_999_999


# runs of characters that need no per-character decision (speed: one regex step per run)
_KEY_RUN = re.compile(r"[a-z0-9_\-.*]*")
_STRING_RUN = re.compile(r"[ !#-\[\]-~]+")  # printable ASCII except '"' and '\\'


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
        return self.s[self.i] if self.i < len(self.s) else ""

    def take(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.i += 1

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
        if self.peek() not in _LCALPHA and self.peek() != "*":
            raise _fail(f"key must start with a lowercase letter or '*' at position {start}")
        self.i = _KEY_RUN.match(self.s, self.i).end()  # type: ignore[union-attr]
        return self.s[start : self.i]

    # §4.2.3.1 Bare Item
    def bare_item(self) -> BareItem:
        ch = self.peek()
        if ch == "-" or ch.isdigit():
            return self.number()
        if ch == '"':
            return self.string()
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
        if self.peek() == "-":
            self.i += 1
        if not self.peek().isdigit():
            raise _fail("a number needs a digit")
        dot = -1
        while self.peek() and (self.peek().isdigit() or (self.peek() == "." and dot < 0)):
            if self.peek() == ".":
                dot = self.i
            self.i += 1
        text = self.s[start : self.i]
        digits = text.lstrip("-")
        if dot < 0:
            if len(digits) > 15:
                raise _fail("integer longer than 15 digits")
            return int(text)
        whole, _, frac = digits.partition(".")
        if len(whole) > 12 or not 1 <= len(frac) <= 3:
            raise _fail("decimal needs at most 12 integer and 1 to 3 fractional digits")
        return Decimal(text)

    # §4.2.5 String
    def string(self) -> str:
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
        self.i += 1
        while self.peek() and self.peek() in _TOKEN_CHARS:
            self.i += 1
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
    if not key or (key[0] not in _LCALPHA and key[0] != "*") or not set(key) <= _KEY_CHARS:
        raise InvalidInput(f"invalid structured field key {key!r}")
    return key


def serialize_bare_item(value: BareItem) -> str:
    """Serialise one bare item (RFC 8941 §4.1.3.1).

    Raises:
        InvalidInput: the value cannot be represented.
    """
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise InvalidInput("integer out of the structured field range")
        return str(value)
    if isinstance(value, Decimal):
        return _serialize_decimal(value)
    if isinstance(value, Token):
        if not value or not (value[0].isalpha() or value[0] == "*") or not value.isascii():
            raise InvalidInput(f"invalid token {value!r}")
        if not set(value) <= _TOKEN_CHARS:
            raise InvalidInput(f"invalid token {value!r}")
        return str(value)
    if isinstance(value, str):
        if not all(" " <= ch <= "~" for ch in value):
            raise InvalidInput("strings may hold only printable ASCII")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
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
