"""TLS behind a load balancer that passes it through with the PROXY protocol v2.

With `server.proxy_protocol.trusted` set, uvicorn accepts plain TCP connections and hands
each to `ProxiedTLSProtocol`. From a trusted peer it first reads the PROXY header straight
from the socket, exactly its length (server/proxy.py), and a connection without a valid one
is closed; from any other peer it reads none. Then it starts TLS on the connection
(`loop.start_tls`, our server context) and passes the TLS connection to the usual protocol
(server/tls.py) with the header's client address in place of the balancer's: the audit
trail, the per-address connection cap, rate limits and token use see the client.

Nothing may read the socket before the header is complete, so these connections are served
on asyncio's event loop, which starts reading only after `connection_made` (where reading is
paused until then); uvloop reads as soon as it accepts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from pkiforge.server.proxy import (
    Network,
    ProxyHeaderError,
    is_trusted,
    read_header,
    trusted_networks,
)
from pkiforge.server.tls import TLSFiles, TLSHttpToolsProtocol, server_context
from pkiforge.settings import ProxyProtocolSettings

log = logging.getLogger("pkiforge.server")


@dataclass(frozen=True)
class ProxySetup:
    """Who may send a PROXY header, how long it may take, and the TLS files after it."""

    trusted: tuple[Network, ...]
    header_timeout: float
    files: TLSFiles

    @classmethod
    def of(cls, settings: ProxyProtocolSettings, files: TLSFiles) -> ProxySetup | None:
        """The setup `settings` ask for, or None if no balancer is trusted (plain TLS)."""
        if not settings.trusted:
            return None
        return cls(trusted_networks(settings.trusted), settings.header_timeout_seconds, files)


_CONTEXTS: dict[TLSFiles, ssl.SSLContext] = {}


def _context(files: TLSFiles) -> ssl.SSLContext:
    # one per process, like uvicorn's own (server_context registers it for reloading)
    ctx = _CONTEXTS.get(files)
    if ctx is None:
        ctx = _CONTEXTS[files] = server_context(files)
    return ctx


class ProxiedTLSProtocol(asyncio.Protocol):
    """The PROXY header (trusted peers only), then TLS, then `TLSHttpToolsProtocol`."""

    def __init__(self, config: Any, **kwargs: Any) -> None:
        self.setup: ProxySetup = config.proxy_setup
        self.inner = TLSHttpToolsProtocol(config=config, **kwargs)
        self.opening: asyncio.Task[None] | None = None
        self.ready = False
        self.pending: list[bytes] = []  # received after the handshake, before `ready`
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # nothing is read until the header is and TLS starts
        self.opening = asyncio.get_running_loop().create_task(self._open(transport))

    async def _open(self, raw: asyncio.Transport) -> None:
        peer = raw.get_extra_info("peername")
        client = None
        try:
            if is_trusted(peer, self.setup.trusted):
                client = await asyncio.wait_for(self._header(raw), self.setup.header_timeout)
            tls = await asyncio.get_running_loop().start_tls(
                raw, self, _context(self.setup.files), server_side=True
            )
        except ProxyHeaderError as exc:
            log.warning("connection from balancer %s refused: %s", _host(peer), exc)
            raw.abort()
            return
        except TimeoutError:
            log.warning("connection from balancer %s refused: no PROXY header", _host(peer))
            raw.abort()
            return
        except (OSError, ssl.SSLError) as exc:  # a refused or broken handshake, as without
            log.info("connection from %s closed before TLS completed: %s", _host(peer), exc)
            raw.abort()
            return
        if tls is None:
            raw.abort()
            return
        self.inner.proxied_client = client
        self.inner.connection_made(tls)
        tls.set_protocol(self.inner)
        self.ready = True
        for data in self.pending:
            self.inner.data_received(data)
        self.pending.clear()
        if self.eof:
            self.inner.eof_received()

    async def _header(self, raw: asyncio.Transport) -> tuple[str, int] | None:
        # a second descriptor of the same socket, read with exact lengths while the
        # transport's own reading is paused: not one byte of the TLS is taken
        fd = raw.get_extra_info("socket").fileno()
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.setblocking(False)
            return await read_header(sock)

    # --- the TLS connection's events until the inner protocol has it --------------------------

    def data_received(self, data: bytes) -> None:
        if self.ready:
            self.inner.data_received(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> None:
        if self.ready:
            self.inner.eof_received()
        else:
            self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ready:
            self.inner.connection_lost(exc)
        elif self.opening is not None:
            self.opening.cancel()


def _host(peer: object) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else "an unknown peer"
