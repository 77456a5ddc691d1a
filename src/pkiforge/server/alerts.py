"""The TLS alert a refused handshake owes the client.

When OpenSSL refuses a handshake (a client certificate from a CA the server does not trust,
expired or not yet valid; a protocol version it does not speak), it writes the fatal alert
that says why (unknown_ca, certificate_expired, bad_certificate, protocol_version ...) into
the connection's outgoing buffer and reports the error. asyncio's SSL protocol, uvloop's and
CPython's alike (CPython issue gh-98078), then closes the connection without sending that
buffer: the client sees a bare close that it cannot tell from a network fault.

`AlertingContext` hands the SSL protocol an `ssl.SSLObject` that reports such a refusal once
as "want more data" instead. For that answer every memory-BIO SSL protocol does the same
thing: it sends what is in the outgoing buffer (the alert) and waits for the client. A client
that read a fatal alert closes the connection, and its close, or anything else it sends, ends
the handshake with the original error; the connection is then closed as before. A client
that does neither is closed by the handshake timeout, like one that stalls a handshake.
A refusal with nothing to send (no alert written) is reported at once, as before.

Only the public memory-BIO API is used (`SSLContext.wrap_bio`, `SSLObject.do_handshake`);
tests/server/test_alert_contract.py checks the behaviour on uvloop's and asyncio's loops.
"""

from __future__ import annotations

import ssl


class _AlertingSSLObject(ssl.SSLObject):
    """An SSLObject whose failed handshake lets its alert out before it fails."""

    outgoing: ssl.MemoryBIO | None = None
    _refusal: ssl.SSLError | None = None

    def do_handshake(self) -> None:
        if self._refusal is not None:  # the alert went out: now fail as OpenSSL did
            raise self._refusal
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            if self.outgoing is None or not self.outgoing.pending:
                raise  # nothing to tell the client: fail at once
            self._refusal = exc
            raise ssl.SSLWantReadError("handshake refused; sending the alert first") from exc


class AlertingContext(ssl.SSLContext):
    """An SSLContext whose handshakes send their fatal alert before the connection closes."""

    sslobject_class = _AlertingSSLObject

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        obj = super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        if isinstance(obj, _AlertingSSLObject):
            obj.outgoing = outgoing
        return obj
