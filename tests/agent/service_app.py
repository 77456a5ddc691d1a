"""A real service for the end-to-end tests: HTTPS with mTLS, certificate reloaded on SIGHUP.

    python service_app.py CERT KEY CA PORT PID_FILE RELOAD_LOG

Serves `GET /` on 127.0.0.1:PORT with `LiveServerContext`; on SIGHUP it reloads the pair and
appends the new serial (hex) to RELOAD_LOG once new handshakes use it.
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

from pkiforge.client import Identity, LiveServerContext


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    cert, key, ca, port, pid_file, reload_log = sys.argv[1:7]
    live = LiveServerContext(Identity(Path(cert), Path(key), Path(ca)))
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), Hello)
    server.daemon_threads = True
    server.socket = live.context.wrap_socket(server.socket, server_side=True)

    def reload(_signum: int, _frame: FrameType | None) -> None:
        serial = live.reload()
        with open(reload_log, "a") as log:
            log.write(f"{serial:x}\n")

    signal.signal(signal.SIGHUP, reload)
    Path(pid_file).write_text(str(os.getpid()))
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
