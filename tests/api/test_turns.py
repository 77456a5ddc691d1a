"""Requests take turns at the core: one at a time, first come first served, with the event loop
reading its sockets between two turns, and never holding a turn while waiting on a client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from pkiforge.api.turns import TakeTurns, Turns

HTTP: Scope = {"type": "http", "method": "POST", "path": "/"}
Work = Callable[[str], Awaitable[None]]


def _app(turns: Turns, log: list[str], work: Work | None = None) -> TakeTurns:
    """An ASGI app whose requests take the turn, log, and answer; `work` runs in the turn."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["name"]
        log.append(f"ask {name}")
        await turns.take()
        log.append(f"run {name}")
        if work is not None:
            await work(name)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        log.append(f"sent {name}")
        await send({"type": "http.response.body", "body": b""})

    return TakeTurns(app, turns)


async def _nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(_: Message) -> None:
    pass


async def _request(app: TakeTurns, name: str) -> None:
    await app({**HTTP, "name": name}, _nothing, _discard)


async def test_one_request_at_a_time_in_the_order_they_asked() -> None:
    log: list[str] = []

    async def work(name: str) -> None:
        await asyncio.sleep(0)  # whoever else is ready could run now, were it not for turns

    app = _app(Turns(), log, work)
    await asyncio.gather(*(_request(app, n) for n in "abcd"))
    runs = [e for e in log if not e.startswith("ask")]
    assert runs == ["run a", "sent a", "run b", "sent b", "run c", "sent c", "run d", "sent d"]


async def test_the_loop_reads_its_sockets_between_two_turns() -> None:
    """A request that arrives while one is served is read before the next one runs.

    Without turns, requests read together run back to back in one pass of the event loop and
    the socket is read only after all of them."""
    log: list[str] = []

    async def work(name: str, client: socket.socket) -> None:
        if name == "a":
            client.send(b"x")  # a client's next request arrives while `a` is served

    async with _reading(log) as client:
        app = _app(Turns(), log, lambda name: work(name, client))
        await asyncio.gather(_request(app, "a"), _request(app, "b"))
    assert log.index("sent a") < log.index("read x") < log.index("run b")


async def test_without_turns_the_same_requests_run_before_the_socket_is_read() -> None:
    """The control for the test above: what the event loop does on its own."""
    log: list[str] = []

    async def request(name: str, client: socket.socket) -> None:
        log.append(f"run {name}")
        if name == "a":
            client.send(b"x")

    async with _reading(log) as client:
        await asyncio.gather(request("a", client), request("b", client))
        await asyncio.sleep(0.01)
    assert log == ["run a", "run b", "read x"]


@contextlib.asynccontextmanager
async def _reading(log: list[str]) -> AsyncIterator[socket.socket]:
    """A client socket: what is sent on it, the event loop logs as `read <data>` when read."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    loop = asyncio.get_running_loop()
    loop.add_reader(ours, lambda: log.append(f"read {ours.recv(16).decode()}"))
    try:
        yield theirs
    finally:
        loop.remove_reader(ours)
        ours.close()
        theirs.close()


async def test_no_turn_is_held_while_waiting_for_the_body() -> None:
    log: list[str] = []
    turns = Turns()
    body = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await turns.take()
        log.append("slow has the turn")
        await receive()  # the client is slow to send the rest of its body
        log.append("slow has its body")
        await turns.take()
        log.append("slow has the turn again")
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def trickle() -> Message:
        await body.wait()
        return {"type": "http.request", "body": b"", "more_body": False}

    fast = _app(turns, log)
    slow_request = asyncio.create_task(TakeTurns(slow, turns)(HTTP, trickle, _discard))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(_request(fast, "fast"), 1)  # served while `slow` waits
    body.set()
    await asyncio.wait_for(slow_request, 1)
    assert log == [
        "slow has the turn",
        "ask fast",
        "run fast",
        "sent fast",
        "slow has its body",
        "slow has the turn again",
    ]


async def test_the_turn_is_given_back_when_the_response_starts() -> None:
    log: list[str] = []
    turns = Turns()
    proceed = asyncio.Event()

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await turns.take()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await proceed.wait()  # a response still being written to a slow reader
        await send({"type": "http.response.body", "body": b""})

    first = asyncio.create_task(TakeTurns(streaming, turns)(HTTP, _nothing, _discard))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(_request(_app(turns, log), "next"), 1)
    proceed.set()
    await first
    assert "sent next" in log


async def test_a_cancelled_waiter_is_skipped_and_an_error_gives_the_turn_back() -> None:
    log: list[str] = []
    turns = Turns()
    release = asyncio.Event()

    async def work(name: str) -> None:
        if name == "a":
            await release.wait()
        if name == "c":
            raise RuntimeError("c failed")

    app = _app(turns, log, work)
    a = asyncio.create_task(_request(app, "a"))
    b = asyncio.create_task(_request(app, "b"))
    c = asyncio.create_task(_request(app, "c"))
    await asyncio.sleep(0.01)
    b.cancel()
    release.set()
    await a
    with pytest.raises(RuntimeError):
        await c
    with pytest.raises(asyncio.CancelledError):
        await b
    await asyncio.wait_for(_request(app, "d"), 1)  # the turn was not lost on the way
    assert [e for e in log if e.startswith("run")] == ["run a", "run c", "run d"]


async def test_requests_outside_the_middleware_and_other_scopes_do_not_queue() -> None:
    turns = Turns()
    await turns.take()  # not inside a request: no turn to take, returns at once
    seen: list[Any] = []

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        await turns.take()
        seen.append(scope["type"])

    await TakeTurns(lifespan, turns)({"type": "lifespan"}, _nothing, _discard)
    await TakeTurns(lifespan, turns)({"type": "lifespan"}, _nothing, _discard)
    assert seen == ["lifespan", "lifespan"]


@pytest.mark.parametrize(("threads", "waits"), [(0, True), (2, False)], ids=["inline", "threads"])
async def test_the_app_takes_turns_when_its_core_runs_inline(
    api: Any, threads: int, waits: bool
) -> None:
    state = api.app.state.pkiforge
    assert any(m.cls is TakeTurns for m in api.app.user_middleware)
    state.threads = threads
    log: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first(scope: Scope, receive: Receive, send: Send) -> None:
        await state.run(lambda: log.append("first"))
        holding.set()
        await release.wait()  # still in its turn: its response has not started
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def second(scope: Scope, receive: Receive, send: Send) -> None:
        await state.run(lambda: log.append("second"))

    one = asyncio.create_task(TakeTurns(first, state.turns)(HTTP, _nothing, _discard))
    await holding.wait()
    two = asyncio.create_task(TakeTurns(second, state.turns)(HTTP, _nothing, _discard))
    await asyncio.sleep(0.05)
    assert log == (["first"] if waits else ["first", "second"])
    release.set()
    await asyncio.gather(one, two)
    assert log == ["first", "second"]
