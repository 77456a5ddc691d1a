"""Every refusal comes back as the `pkiforge.errors` exception its status and type stand for."""

from __future__ import annotations

import httpx
import pytest

from pkiforge.client import PkiClient, ServerError, Unreachable
from pkiforge.errors import (
    AuthenticationFailed,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PkiError,
    RateLimited,
    StoreUnavailable,
)
from tests.client.conftest import BASE
from tests.client.fake_api import FakeApi, problem

CASES = [
    (400, "invalid-input", InvalidInput),
    (401, "unauthenticated", AuthenticationFailed),
    (403, "forbidden", PermissionDenied),
    (404, "not-found", NotFound),
    (405, "http", InvalidInput),
    (409, "conflict", Conflict),
    (413, "http", InvalidInput),
    (418, "http", InvalidInput),  # any other 4xx: refused as it stands, not worth a retry
    (422, "validation", InvalidInput),
    (429, "rate-limited", RateLimited),
    (503, "unavailable", StoreUnavailable),
    (500, "integrity", IntegrityError),
    (500, "internal", ServerError),
    (502, "http", ServerError),
]


@pytest.mark.parametrize(("status", "slug", "kind"), CASES, ids=[f"{s}-{t}" for s, t, _ in CASES])
def test_status_and_type_choose_the_exception(
    client: PkiClient, api: FakeApi, status: int, slug: str, kind: type[PkiError]
) -> None:
    api.fail.append(problem(status, slug, f"detail for {status}"))
    with pytest.raises(kind) as caught:
        client.get_certificate("ab")
    assert type(caught.value) is kind
    assert str(caught.value) == f"detail for {status}"
    assert caught.value.data["status"] == status


def test_rate_limit_carries_retry_after(client: PkiClient, api: FakeApi) -> None:
    api.fail.append(problem(429, "rate-limited", "slow down"))
    with pytest.raises(RateLimited) as caught:
        client.list_cas()
    assert caught.value.retry_after == 7


def test_invalid_input_names_the_field(client: PkiClient, api: FakeApi) -> None:
    api.fail.append(problem(422, "validation", "csr: field required", field="csr"))
    with pytest.raises(InvalidInput) as caught:
        client.get_certificate("ab")
    assert caught.value.field == "csr"


def test_a_body_that_is_not_json_still_gives_a_message(client: PkiClient, api: FakeApi) -> None:
    api.fail.append(httpx.Response(503, text="upstream down"))
    with pytest.raises(StoreUnavailable, match="upstream down"):
        client.healthz()


def test_a_success_that_does_not_parse_is_a_server_error(client: PkiClient, api: FakeApi) -> None:
    api.fail.append(httpx.Response(200, json={"nothing": "useful"}))
    with pytest.raises(ServerError, match="unexpected answer to GET"):
        client.get_certificate("ab")


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("Connection refused"), httpx.ReadTimeout("timed out")],
    ids=["refused", "timeout"],
)
def test_network_failures_are_unreachable(api: FakeApi, exc: Exception) -> None:
    api.fail.append(exc)
    pki = PkiClient(BASE, verify=False, transport=api.transport())
    with pki, pytest.raises(Unreachable, match=f"cannot reach the PKI server at {BASE}"):
        pki.healthz()


def test_a_real_refused_connection_is_unreachable() -> None:
    pki = PkiClient("https://127.0.0.1:9", verify=False, timeout=2)
    with pki, pytest.raises(Unreachable):
        pki.healthz()


def _raised_by_httpx(cause: BaseException) -> httpx.ConnectError:
    """The ConnectError httpx raises for `cause`, chained as httpx chains it."""
    try:
        try:
            raise cause
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        return exc


def test_a_certificate_that_does_not_verify_is_untrusted_not_unreachable() -> None:
    import ssl

    from pkiforge.client.errors import retryable, transport_error
    from pkiforge.errors import UntrustedServer

    failure = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] failed")
    failure.verify_message = "unable to get local issuer certificate"
    error = transport_error(BASE, _raised_by_httpx(failure))
    assert isinstance(error, UntrustedServer) and not retryable(error)
    assert str(error) == (
        f"the server at {BASE} is not trusted: its TLS certificate does not verify against "
        "the trusted CA certificates (unable to get local issuer certificate)"
    )
    refused = transport_error(BASE, _raised_by_httpx(ConnectionRefusedError(111, "refused")))
    assert isinstance(refused, Unreachable) and retryable(refused)
