"""HeadScanner counts a request head's lines as they arrive, however the bytes are split."""

from __future__ import annotations

import pytest

from pkiforge.server.limits import HeadScanner, HttpLimits, Over
from pkiforge.settings import ServerSettings

LIMITS = HttpLimits(max_request_line=64, max_header=32, max_head=150, max_headers=4)

HEADS = {
    "a head": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None),
    "bare line feeds": (b"GET / HTTP/1.1\nHost: x\n\n", None),
    "empty lines before the request line": (b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", None),
    "request line at its limit": (b"GET /" + b"a" * 48 + b" HTTP/1.1\r\n\r\n", None),
    "request line over": (b"GET /" + b"a" * 49 + b" HTTP/1.1\r\n\r\n", Over.REQUEST_LINE),
    "request line without an end": (b"G" * 65, Over.REQUEST_LINE),
    "header at its limit": (b"GET / HTTP/1.1\r\nX: " + b"a" * 27 + b"\r\n\r\n", None),
    "header over": (b"GET / HTTP/1.1\r\nX: " + b"a" * 28 + b"\r\n\r\n", Over.HEADER),
    "four headers": (b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 4 + b"\r\n", None),
    "five headers": (b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 5 + b"\r\n", Over.HEADERS),
    "whole head over": (
        b"GET /" + b"a" * 50 + b"\r\n" + (b"X: " + b"a" * 27 + b"\r\n") * 4, Over.HEAD
    ),
}  # fmt: skip


@pytest.mark.parametrize(("head", "over"), HEADS.values(), ids=HEADS.keys())
@pytest.mark.parametrize("split", [0, 1, 7], ids=["whole", "byte by byte", "by 7 bytes"])
def test_the_scanner_finds_the_end_or_the_limit(head: bytes, over: Over | None, split: int) -> None:
    scanner = HeadScanner(LIMITS)
    pieces = [head] if split == 0 else [head[i : i + split] for i in range(0, len(head), split)]
    ends, found = [], None
    for piece in pieces:
        end, found = scanner.feed(piece)
        if found is not None:
            break
        if end >= 0:
            ends.append(end)
    assert found is over
    if over is None:
        assert ends == [len(pieces[-1])]  # the end is found once, after the empty line


def test_the_end_of_a_head_is_where_its_body_begins() -> None:
    scanner = HeadScanner(LIMITS)
    head = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
    assert scanner.feed(head + b"abc") == (len(head), None)
    scanner.reset()
    assert scanner.empty
    assert scanner.feed(b"GET / HTTP/1.1\r\n\r\n") == (18, None)


def test_limits_come_from_the_server_settings() -> None:
    limits = HttpLimits.from_settings(
        ServerSettings(max_head_bytes=4096, trusted_proxies=["10.0.0.0/8"], idle_timeout_seconds=3)
    )
    assert limits.max_head == 4096 and limits.idle_timeout == 3.0
    assert limits.max_request_line == HttpLimits().max_request_line
    assert not limits.capped("10.1.2.3")  # a trusted proxy speaks for many clients
    assert limits.capped("192.0.2.1") and limits.capped("::1")
