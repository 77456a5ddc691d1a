"""Schemathesis against our own OpenAPI document, in-process: no input may produce a 500."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from .helpers import SERVICE_HEADER, Api, make_api

# built at import: schemathesis parametrizes from the schema while pytest collects
_HOME = Path(tempfile.mkdtemp(prefix="pkiforge-fuzz-"))
FUZZED: Api = make_api(_HOME / "home")
# OCSP bodies are DER (application/ocsp-request), which schemathesis cannot generate
schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZED.app).exclude(path_regex="ocsp")


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    FUZZED.pki.close()
    shutil.rmtree(_HOME, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_input_makes_a_server_error(case: Any) -> None:
    response = case.call(headers={SERVICE_HEADER: "ops"})  # admin: reach the deepest code
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json")
        assert "Traceback" not in response.text
