"""CPU per certificate request in-process: the ASGI app driven one request at a time.

No TLS, no HTTP server and no load generator: what is left is the request's own work (the
app's middleware and routing, the authorization checks, the store, the signature), measured
as process CPU time per request. Useful to compare two versions of the code, or one version
with registries of different sizes (`--services`), where the full bench is too noisy.

    .venv/bin/python -m bench.inprocess --services 1000 --requests 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.issuance import PASSPHRASE, add_services, prepare


def _serving_app() -> Any:
    """The app as `pkiforge serve` builds it in each serving process: from the composition
    root, or in a tree that has none (an older revision run by `bench.ab --a-rev`), from the
    worker entry point it had instead."""
    try:
        from pkiforge.wiring import ServingApp
    except ImportError:
        from pkiforge.api.asgi import app_from_env  # type: ignore[import-not-found]

        return app_from_env()
    from pkiforge.settings import load_settings

    return ServingApp(load_settings(Path(os.environ["PKIFORGE_HOME"])))()


async def _measure(work: Path, requests: int, warmup: int) -> float:
    app = _serving_app()
    pem = (work / "client.pem").read_text()
    leaf = pem[: pem.index("-----END CERTIFICATE-----") + 26]
    tls = {"client_cert_chain": [leaf], "tls_version": 0x0304, "cipher_suite": None}
    body = json.dumps({"csr": (work / "svc.csr").read_text()}).encode()
    path = "/api/v1/certificates/request"

    async def one() -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "https",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"localhost"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8443),
            "extensions": {"tls": tls},
            "state": {},
        }
        sent: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent.append(message["status"])

        await app(scope, receive, send)
        if sent != [201]:
            raise SystemExit(f"the request was answered {sent}")

    async with app.router.lifespan_context(app):
        for _ in range(warmup):
            await one()
        start = time.process_time()
        for _ in range(requests):
            await one()
        return (time.process_time() - start) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-type", default="rsa2048")
    parser.add_argument("--services", type=int, default=0, help="other services registered")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pkiforge-inprocess-"))
    try:
        files = prepare(work, args.key_type)
        add_services(files["home"], args.services)
        os.environ["PKIFORGE_HOME"] = str(files["home"])
        os.environ["PKIFORGE_CA_PASSPHRASE"] = PASSPHRASE
        seconds = asyncio.run(_measure(work, args.requests, args.warmup))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"intermediate {args.key_type}, {args.services} other services registered: "
        f"{seconds * 1000:.2f} ms of CPU per request ({args.requests} requests, one at a time)"
    )


if __name__ == "__main__":
    main()
