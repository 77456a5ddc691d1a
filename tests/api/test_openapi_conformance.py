"""Schemathesis, all checks, against a real `pkiforge serve` over mTLS: the OpenAPI document is
what the server does.

Two runs, each on a fresh data home (a run may revoke, register and update what it finds): as
an admin, and as a plain service. Both must end without a single failure. The run is bounded
by a fixed seed and a few examples per operation.

Left out, and why:
- the OCSP routes (`/api/v1/ocsp...`): their answers are OCSP responses (RFC 6960), and the POST
  body is a DER request that schemathesis cannot make; tests/api/test_ocsp.py covers them.
- revoking the run's own client certificate or a CA of its chain (schemathesis_hooks.py):
  every later request would be a 401 and the rest of the API untested.
- `positive_data_acceptance` allows 400 where the schema cannot say what the server checks
  after parsing (OPERATIONS_WITH_CONTENT_RULES below, each with its reason).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from .server import make_home, start_server

pytestmark = pytest.mark.slow

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
WHITELIST = {
    "services": [
        {"service_id": "ops", "allowed_operations": ["admin"]},
        {
            "service_id": "billing",
            "allowed_operations": [
                "request", "renew", "revoke", "download", "register", "update", "discover", "list",
            ],
        },
    ]
}  # fmt: skip
SEED = 20261207
MAX_EXAMPLES = 8

# operation -> why a schema-valid request may still get 400 (the problem names the field)
OPERATIONS_WITH_CONTENT_RULES = {
    "POST /api/v1/certificates/request": (
        "the CSR must parse and carry a valid self-signature; SAN names must be valid DNS "
        "names, IPs and URIs; `key_type` only without a CSR: rules across fields and inside "
        "the PEM that JSON Schema cannot state"
    ),
    "POST /api/v1/certificates/{serial}/renew": "the CSR must parse and verify",
    "POST /api/v1/certificates/{serial}/revoke": (
        "reason names are read in several spellings (keyCompromise, key-compromise ...), and "
        "an invalidity date may not be in the future"
    ),
    "DELETE /api/v1/certificates/{serial}/revoke": "as the POST spelling",
    "POST /api/v1/keys": "the PEM must hold an RSA >= 2048, P-256, P-384 or Ed25519 public key",
    "POST /api/v1/services/register": (
        "names must be DNS names, IPs or wildcard patterns; http, https and spiffe endpoints "
        "need an authority"
    ),
    "PUT /api/v1/services/{service_id}": "as registering",
    "POST /api/v1/ca/{name}/revoke": "reason names are read in several spellings, as above",
    "GET /api/v1/certificates": (
        "`cursor` must be one the server made (a page's `next_cursor`) for a listing in the "
        "same order: opaque text to the schema"
    ),
}

CONFIG = """
hooks = "{hooks}"
tls-verify = "{root}"
request-cert = "{cert}"
request-cert-key = "{key}"
seed = {seed}

[generation]
max-examples = {max_examples}
database = "none"

[[operations]]
include-path-regex = "^/api/v1/ocsp"
enabled = false
"""
OPERATION = """
[[operations]]
include-name = "{name}"
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "3XX", "400", "401", "403", "404", "409", "429", "5XX",
]
"""


@pytest.mark.parametrize("service", ["ops", "billing"], ids=["admin", "service"])
def test_the_server_does_what_its_openapi_document_says(
    service: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = make_home(tmp_path_factory.mktemp(f"conformance-{service}") / "home", WHITELIST)
    cert, key = home.client_cert(service, service)
    own = x509.load_pem_x509_certificate(Path(cert).read_bytes()).serial_number
    config = home.path / "schemathesis.toml"
    config.write_text(
        CONFIG.format(
            hooks=HOOKS,
            root=home.root,
            cert=cert,
            key=key,
            seed=SEED,
            max_examples=MAX_EXAMPLES,
        )
        + "".join(OPERATION.format(name=name) for name in OPERATIONS_WITH_CONTENT_RULES)
    )
    server = start_server(home)
    try:
        run = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
                "run", f"{server.url}/openapi.json", "--checks", "all", "--no-color",
            ],
            env={
                **os.environ,
                "PKIFORGE_CONFORMANCE_OWN_SERIAL": format(own, "x"),
                "PKIFORGE_CONFORMANCE_OWN_CAS": "root,services",  # make_home's hierarchy
            },
            capture_output=True,
            text=True,
            timeout=600,
            cwd=home.path,
        )  # fmt: skip
        with server.client((cert, key)) as client:
            whoami = client.get("/api/v1/whoami")
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested, run.stdout
    # every operation but the two OCSP ones was tested
    assert int(tested[1]) == int(selected[1]) == int(selected[2]) - 2, run.stdout
    # the run kept its identity to the end, so every operation was tested as this caller
    assert whoami.status_code == 200, whoami.text
