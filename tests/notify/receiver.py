"""A webhook receiver for tests: a real HTTP server that verifies each request with the
`standardwebhooks` package (a second implementation of the signing) and records it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from pkiforge.notify.webhooks import new_secret


@dataclass
class Receiver:
    secret: str = field(default_factory=new_secret)
    status: int = 204  # what it answers
    received: list[dict[str, Any]] = field(default_factory=list)  # verified bodies
    ids: list[str] = field(default_factory=list)  # webhook-id of each verified request
    # each verified request as sent: its headers (lower-case names) and raw body
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refused: int = 0  # requests whose signature did not verify
    url: str = ""
    arrived: threading.Event = field(default_factory=threading.Event)
    # while set, a verified request gets no answer until it is cleared (or 30 s pass)
    hang: threading.Event | None = None


@contextmanager
def receiving(status: int = 204, secret: str | None = None) -> Iterator[Receiver]:
    box = Receiver(status=status) if secret is None else Receiver(secret, status)
    verifier = Webhook(box.secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            try:
                verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
            except Exception:
                box.refused += 1
                self.send_response(401)
                self.end_headers()
                return
            box.received.append(json.loads(body))
            box.ids.append(self.headers["webhook-id"])
            box.raw.append(({k.lower(): v for k, v in self.headers.items()}, body))
            box.arrived.set()
            if box.hang is not None:
                box.hang.wait(30)
            self.send_response(box.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
