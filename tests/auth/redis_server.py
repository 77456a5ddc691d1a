"""A redis-server of a test's own on a free port, without persistence, that it may restart."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """`redis-server` on 127.0.0.1:`port`, keeping nothing on disk (`save ""`, no AOF)."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder
        self._options = options
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self._folder), *self._options]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port, socket_timeout=2)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    probe.ping()
                    return
                except redis.exceptions.ConnectionError:
                    if self._proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError("redis-server did not start") from None
                    time.sleep(0.05)
        finally:
            probe.close()

    def stop(self, *, crash: bool = False) -> None:
        """SIGTERM (a clean shutdown), or SIGKILL with `crash` (nothing saved on the way out)."""
        if self._proc is not None:
            if crash:
                self._proc.kill()
            else:
                self._proc.terminate()
            self._proc.wait(10)
            self._proc = None

    def restart(self, *, crash: bool = False) -> None:
        """Stop and start again: without persistence, everything it held is gone."""
        self.stop(crash=crash)
        self.start()

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, **options)  # type: ignore[arg-type]


@contextmanager
def private_redis(folder: Path, *options: str) -> Iterator[PrivateRedis]:
    """A started `PrivateRedis`, stopped afterwards; skips when redis-server is not installed."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(folder, *options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
