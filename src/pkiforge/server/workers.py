"""Several serving processes behind one listening socket; each new connection goes to the
worker that holds the fewest.

uvicorn's own multi-process mode shares the listening socket: the first worker to wake takes
every connection waiting in the backlog, and with keep-alive clients one worker ended up with
all of them. Giving each worker its own SO_REUSEPORT socket was better but still left the
split to the kernel's hash of each connection's addresses. 16 keep-alive clients split 13 to
3 in one measured run, and the clients of the busier worker waited about four times as long.

Here the supervisor accepts each connection and passes its file descriptor, over a Unix
socket pair, to the worker that holds the fewest connections. Each worker publishes in shared
memory how many it holds and how many it has been given; the supervisor counts what it has
sent since. The worker makes the TLS handshake and serves the connection as uvicorn would.
The supervisor starts accepting once every worker serves, so that the first keep-alive
connections do not all land on the worker that started first; after that, a worker being
restarted gets connections only if no other can take them. It restarts a worker that dies and
passes SIGINT/SIGTERM on for a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from pkiforge.server.config import AppFactory, uvicorn_config
from pkiforge.server.tls import TLSFiles

log = logging.getLogger("pkiforge.server")
RESTART_PAUSE = 1.0  # between restarts of a worker that keeps dying
STOP_TIMEOUT = 15.0  # uvicorn's graceful shutdown (10 s) plus margin, then SIGKILL
START_TIMEOUT = 30.0  # the first connections wait at most this long for every worker
ACCEPTS_PER_WAKE = 64  # the supervisor goes back to watching its workers at least this often
FDS_PER_MESSAGE = 64


def _worker(
    app: AppFactory,
    files: TLSFiles,
    host: str,
    port: int,
    channel: socket.socket,
    loads: Any,
    i: int,
) -> None:
    _HandedServer(uvicorn_config(app, files, host, port), channel, loads, i).run()


class _HandedServer(uvicorn.Server):
    """`uvicorn.Server`, taking its connections from the supervisor instead of a socket."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket, loads: Any, i: int):
        super().__init__(config)
        self._channel, self._loads, self._slot = channel, loads, 2 * i
        self._taken = 0
        self._handshaking = 0  # connections taken whose TLS handshake has not finished
        self._handshakes: set[asyncio.Task[None]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan, and no socket of its own
        self._channel.setblocking(False)
        asyncio.get_running_loop().add_reader(self._channel.fileno(), self._receive)
        self._publish()  # ready: the supervisor may prefer this worker now

    def _receive(self) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(self._channel, 1, FDS_PER_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data and not fds:  # the supervisor is gone: finish what we hold and stop
            asyncio.get_running_loop().remove_reader(self._channel.fileno())
            self.should_exit = True
            return
        loop = asyncio.get_running_loop()
        for fd in fds:
            self._taken += 1
            self._handshaking += 1
            task = loop.create_task(self._handshake(socket.socket(fileno=fd)))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)
        self._publish()

    async def _handshake(self, sock: socket.socket) -> None:
        pending = True

        def served() -> None:  # counted by uvicorn from now on, no longer by us
            nonlocal pending
            if pending:
                pending = False
                self._handshaking -= 1

        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: self._protocol(served), sock, ssl=self.config.ssl
            )
        except (OSError, ssl.SSLError, EOFError) as exc:  # the client gave up or failed TLS
            log.debug("connection dropped before it was served: %s", type(exc).__name__)
            sock.close()
        finally:
            if pending:
                served()
                self._publish()

    def _protocol(self, served: Callable[[], None]) -> asyncio.Protocol:
        """uvicorn's protocol for one connection, telling us when it starts and ends.

        `served` runs in the same callback in which uvicorn adds the connection to
        `server_state.connections`, so that no published count ever holds it twice. (Counting
        handshake tasks instead did, from `connection_made` until the task's done-callback,
        which could come after the connection's first response: a tick in between published
        one too many until the next tick, and the next connections went to other workers.)
        """
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        made, lost = protocol.connection_made, protocol.connection_lost

        def connection_made(transport: asyncio.BaseTransport) -> None:
            made(transport)
            served()

        def connection_lost(exc: Exception | None) -> None:
            lost(exc)
            # say at once that this worker holds one fewer: waiting for the next tick (0.1 s)
            # sent the next connections to the other workers, as if it were still held
            self._publish()

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol

    def _publish(self) -> None:
        held = len(self.server_state.connections) + self._handshaking
        self._loads[self._slot] = held
        self._loads[self._slot + 1] = self._taken

    async def on_tick(self, counter: int) -> bool:
        self._publish()
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self._channel.fileno())
        self._channel.close()
        for task in list(self._handshakes):
            task.cancel()
        await super().shutdown(sockets)


NOT_READY = -1  # what a worker's "held" slot says until it has started serving


def least_busy(held: Sequence[int], taken: Sequence[int], sent: Sequence[int]) -> list[int]:
    """Worker indexes, the least busy first: what each holds plus what it has not yet taken.

    Workers still starting (`held` is NOT_READY) come last: a connection handed to one waits
    until it serves, so they get one only when no worker is ready.
    """
    load = [max(0, h) + max(0, s - t) for h, t, s in zip(held, taken, sent, strict=True)]
    return sorted(range(len(load)), key=lambda i: (held[i] == NOT_READY, load[i], i))


class Supervisor:
    """Run `workers` serving processes and hand them the connections of a listening socket
    (`server.listener.listening_socket`) until SIGINT/SIGTERM."""

    def __init__(
        self, app: AppFactory, files: TLSFiles, host: str, port: int, workers: int
    ) -> None:
        self.app, self.files, self.host, self.port = app, files, host, port
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._processes: list[BaseProcess] = []
        self._channels: list[socket.socket | None] = [None] * workers
        self._started = [0.0] * workers
        self._sent = [0] * workers
        # per worker: connections held, connections taken (what each said last)
        self._loads: Any = self._context.Array("i", 2 * workers, lock=False)
        self._accepting = False
        self._start_deadline = 0.0

    def run(self, listener: socket.socket) -> None:
        """Serve until stopped; closes `listener` at the end."""
        listener.setblocking(False)
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._processes = [self._start(i) for i in range(self.workers)]
            self._start_deadline = time.monotonic() + START_TIMEOUT
            while not self._stopping:
                alive = [p.sentinel for p in self._processes if p.is_alive()]
                if self._ready_to_accept():
                    ready = wait([listener, *alive], timeout=self._next_wait())
                else:  # connections wait in the backlog until every worker can take its share
                    ready = wait(alive, timeout=0.05)
                if listener in ready:
                    self._dispatch(listener)
                self._replace_dead()
        finally:
            listener.close()  # no new connections; the workers finish what they hold
            self._terminate()
            for channel in self._channels:
                if channel is not None:
                    channel.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start(self, i: int) -> BaseProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._loads[2 * i], self._loads[2 * i + 1] = NOT_READY, 0
        self._sent[i] = 0
        proc = self._context.Process(
            target=_worker,
            args=(self.app, self.files, self.host, self.port, theirs, self._loads, i),
            name="pkiforge-worker",
        )
        proc.start()
        theirs.close()
        old, self._channels[i] = self._channels[i], ours
        if old is not None:
            old.close()
        self._started[i] = time.monotonic()
        return proc

    def _ready_to_accept(self) -> bool:
        """From the moment every worker first serves (or START_TIMEOUT passes), for good.

        Keep-alive connections stay with the worker they are given: taken while one worker
        is still starting, they would all land on the others and stay there.
        """
        if not self._accepting:
            ready = all(self._loads[2 * i] != NOT_READY for i in range(self.workers))
            self._accepting = ready or time.monotonic() >= self._start_deadline
        return self._accepting

    def _next_wait(self) -> float:
        """Up to a second, less if a dead worker is due to be restarted sooner."""
        now, due = time.monotonic(), 1.0
        for i, proc in enumerate(self._processes):
            if not proc.is_alive():
                due = min(due, max(0.0, self._started[i] + RESTART_PAUSE - now))
        return due

    def _replace_dead(self) -> None:
        now = time.monotonic()
        for i, proc in enumerate(self._processes):
            if self._stopping or proc.is_alive() or now < self._started[i] + RESTART_PAUSE:
                continue  # a worker that keeps dying is restarted at most once per pause
            log.warning("worker %s exited with %s; restarting", proc.pid, proc.exitcode)
            self._processes[i] = self._start(i)

    def _dispatch(self, listener: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: try again on the next wake
                log.warning("accept failed: %s", exc.strerror)
                return
            with conn:  # the worker holds its own copy once it is sent
                self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        loads = self._loads[:]
        for i in least_busy(loads[0::2], loads[1::2], self._sent):
            channel = self._channels[i]
            if channel is None or not self._processes[i].is_alive():
                continue
            try:
                socket.send_fds(channel, [b"c"], [conn.fileno()], socket.MSG_DONTWAIT)
            except OSError:  # gone, or not reading its channel: the next one
                continue
            self._sent[i] += 1
            return
        log.warning("no worker could take a connection; closed it")

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _terminate(self) -> None:
        for proc in self._processes:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes in-flight requests
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self._processes:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
