"""CoalescingTransport: what is written in one event-loop turn leaves as one write, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pkiforge.server.coalesce import CoalescingTransport


class Recording(asyncio.Transport):
    """A transport that remembers every call made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        assert not self.closing, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")

    def get_write_buffer_size(self) -> int:
        return 7


async def _turn() -> None:
    await asyncio.sleep(0)


async def test_writes_in_one_turn_go_out_joined_at_its_end() -> None:
    inner = Recording()
    outer = CoalescingTransport(inner)
    outer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    outer.write(memoryview(b"ok"))
    outer.write(b"")  # nothing to send adds nothing
    assert inner.writes == []
    assert outer.get_write_buffer_size() == 7 + 40
    await _turn()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    outer.writelines([b"a", b"b"])
    await _turn()
    outer.write(b"c")
    await _turn()
    assert inner.writes[1:] == [b"ab", b"c"]


async def test_close_sends_what_was_written_first() -> None:
    inner = Recording()
    outer = CoalescingTransport(inner)
    outer.write(b"last words")
    outer.close()
    assert inner.writes == [b"last words"] and inner.calls == ["close"]
    outer.write(b"too late")
    await _turn()  # the scheduled flush finds the transport closing and drops it
    assert inner.writes == [b"last words"]


async def test_abort_drops_what_was_held() -> None:
    inner = Recording()
    outer = CoalescingTransport(inner)
    outer.write(b"never")
    outer.abort()
    await _turn()
    assert inner.writes == [] and inner.calls == ["abort"]


async def test_everything_else_is_the_wrapped_transports() -> None:
    inner = Recording()
    outer = CoalescingTransport(inner)
    outer.pause_reading()
    outer.resume_reading()
    assert inner.calls == ["pause_reading", "resume_reading"]
    assert outer.get_extra_info("peername") == ("127.0.0.1", 5000)
    assert outer.get_extra_info("ssl_object", "none") == "none"
    assert outer.is_closing() is False
    inner.closing = True
    assert outer.is_closing() is True


def test_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        CoalescingTransport(Recording())
