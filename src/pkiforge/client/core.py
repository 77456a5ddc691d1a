"""The transport-agnostic layer: an operation is a `Call` (what to send, how to read the answer).

`PkiClient` and `AsyncPkiClient` differ only in how they send a `Call` and await its `Reply`;
building requests, mapping errors and parsing results happen here, once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pkiforge.client.errors import ServerError, error_from_problem

__all__ = ["API", "Call", "Reply", "finish", "segment"]

T = TypeVar("T")
API = "/api/v1"


@dataclass(frozen=True)
class Reply:
    """What came back: status, headers (lower-case names) and the raw body."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body as JSON.

        Raises:
            ValueError: the body is not JSON.
        """
        return json.loads(self.content)

    def text(self) -> str:
        return self.content.decode("utf-8")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and the parser of its successful answer."""

    method: str
    path: str
    parse: Callable[[Reply], T]
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"call paths are absolute, not {self.path!r}")


def segment(value: str | int) -> str:
    """One path segment, quoted; an int serial becomes hex as the API writes serials."""
    text = format(value, "x") if isinstance(value, int) else str(value)
    if not text:
        raise ValueError("an empty path segment")
    return quote(text, safe="")


def finish(call: Call[T], reply: Reply) -> T:
    """The result of a call, or the `pkiforge.errors` exception its answer stands for.

    Raises:
        PkiError: the server refused (chosen by status and problem type), or answered nonsense.
    """
    if reply.status >= 400:
        raise error_from_problem(reply.status, reply.headers, reply.content)
    if not 200 <= reply.status < 300:
        raise ServerError(f"unexpected HTTP {reply.status} for {call.method} {call.path}")
    try:
        return call.parse(reply)
    except (KeyError, ValueError, TypeError) as exc:
        raise ServerError(
            f"unexpected answer to {call.method} {call.path}: {type(exc).__name__}: {exc}"
        ) from None
