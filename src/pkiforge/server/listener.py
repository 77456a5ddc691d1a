"""The listening socket, bound before anything starts serving."""

from __future__ import annotations

import socket

from pkiforge.errors import Conflict, InvalidInput
from pkiforge.settings import MAX_PORT, MIN_PORT

BACKLOG = 2048


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to the address and listening: one worker or many serve from it, so
    both fail the same way, here, before serving starts.

    Raises:
        InvalidInput: the port is outside 1-65535.
        Conflict: the address is taken or cannot be bound here.
    """
    if not MIN_PORT <= port <= MAX_PORT:  # bind() would refuse 65536+ only with OverflowError
        raise InvalidInput(f"port {port} is outside {MIN_PORT}-{MAX_PORT}", field="port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise Conflict(f"cannot listen on {host}:{port}: {reason}", field="port") from None
    return sock
