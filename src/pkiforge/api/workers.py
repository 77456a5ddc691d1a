"""Several serving processes, each with its own listening socket on the same port.

uvicorn's own multi-process mode shares one listening socket: the first worker to wake takes
every connection waiting in the backlog, and with keep-alive clients one worker ended up with
all of them while the other idled. Here each worker binds the address with SO_REUSEPORT, so the
kernel spreads new connections over the workers. The supervisor starts them, restarts one that
dies, and passes SIGINT/SIGTERM on for a graceful stop.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from pkiforge.api.tls import TLSFiles
from pkiforge.errors import Conflict

log = logging.getLogger("pkiforge.server")
RESTART_PAUSE = 1.0  # between restarts of a worker that keeps dying
STOP_TIMEOUT = 15.0  # uvicorn's graceful shutdown (10 s) plus margin, then SIGKILL


def reuseport_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT (and listening, unless asked not to).

    Raises:
        Conflict: the address is taken by a process that did not set SO_REUSEPORT, or
            cannot be bound here.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise Conflict(f"cannot listen on {host}:{port}: {exc.strerror}", field="port") from None
    sock.set_inheritable(True)
    return sock


def _worker(files: TLSFiles, host: str, port: int) -> None:
    import uvicorn

    from pkiforge.api.server import uvicorn_config

    sock = reuseport_socket(host, port)
    uvicorn.Server(uvicorn_config(files, host, port)).run(sockets=[sock])


class Supervisor:
    """Run `workers` serving processes until SIGINT/SIGTERM."""

    def __init__(self, files: TLSFiles, host: str, port: int, workers: int) -> None:
        self.files, self.host, self.port, self.workers = files, host, port, workers
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._processes: list[BaseProcess] = []

    def run(self) -> None:
        # fail here, once, if the port is taken; bound but not listening, so the kernel never
        # hands this socket a connection
        reuseport_socket(self.host, self.port, listen=False).close()
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._processes = [self._start() for _ in range(self.workers)]
            while not self._stopping:
                wait([p.sentinel for p in self._processes], timeout=1.0)
                for i, proc in enumerate(self._processes):
                    if not self._stopping and not proc.is_alive():
                        log.warning("worker %s exited with %s; restarting", proc.pid, proc.exitcode)
                        time.sleep(RESTART_PAUSE)
                        self._processes[i] = self._start()
        finally:
            self._terminate()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start(self) -> BaseProcess:
        proc = self._context.Process(
            target=_worker, args=(self.files, self.host, self.port), name="pkiforge-worker"
        )
        proc.start()
        return proc

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
