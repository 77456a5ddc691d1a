"""http-01 validation runs off the request path, records its outcome, and times out."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from pkiforge.acme.addresses import AddressGuard
from pkiforge.acme.jws import b64encode
from pkiforge.acme.models import Account, Status
from pkiforge.acme.service import AcmeService, Lifetimes, key_authorization
from pkiforge.api.acme.fetch import Http01Fetcher
from pkiforge.clock import FixedClock, SystemClock
from pkiforge.errors import AcmeError
from pkiforge.store.acme_repos import SqlAcmeRepository
from pkiforge.store.db import SqlStore


class Recorded:
    """The events the service reported."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def order(self, status: Status) -> None:
        pass

    def challenge(self, type: str, error: str | None) -> None:
        self.seen.append((type, error))


class BlockingFetch:
    """A challenge server that answers only when told to, with what it is told."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.body = b""

    def __call__(self, name: str, token: str) -> bytes:
        assert self.answer.wait(30), "the test never released the fetch"
        return self.body


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore.open(f"sqlite:///{tmp_path / 'acme.db'}")
    yield s
    s.close()


def service(
    store: SqlStore, fetch: Callable[[str, str], bytes]
) -> tuple[AcmeService, list[threading.Thread]]:
    threads: list[threading.Thread] = []

    def submit(job: Callable[[], None]) -> None:
        thread = threading.Thread(target=job)
        threads.append(thread)
        thread.start()

    acme = AcmeService(
        SqlAcmeRepository(store), SystemClock(), _refuse, lambda *_: None, lambda *_: None,
        fetch, submit,
    )  # fmt: skip
    return acme, threads


def _refuse(*_: object) -> int:
    raise AssertionError("not issuing in this test")


def account(store: SqlStore) -> Account:
    acct = Account("acct1", "thumb-print", {"kty": "EC"}, "web", Status.VALID, (),
                   dt.datetime.now(dt.UTC))  # fmt: skip
    SqlAcmeRepository(store).add_account(acct)
    return acct


@pytest.mark.parametrize("correct", [True, False], ids=["right-answer", "wrong-answer"])
def test_the_challenge_answers_before_validation_ends(store: SqlStore, correct: bool) -> None:
    fetch = BlockingFetch()
    acme, threads = service(store, fetch)
    events = Recorded()
    acme.events = events
    acct = account(store)
    order = acme.new_order(
        acct, {"identifiers": [{"type": "dns", "value": "a.web.internal"}]}, "services"
    )
    authz, _ = acme.authorization(acct, order.authz_ids[0])
    challenge = authz.challenges[0]
    # the fetch is blocked: the request still answers, with the challenge processing
    answered, _ = acme.respond(acct, challenge.challenge_id)
    assert answered.status is Status.PROCESSING
    again, _ = acme.respond(acct, challenge.challenge_id)  # a retry starts nothing new
    assert again.status is Status.PROCESSING and len(threads) == 1
    fetch.body = key_authorization(challenge.token, acct.thumbprint).encode() + b"\n"
    if not correct:
        fetch.body = b"something else"
    fetch.answer.set()
    threads[0].join(30)
    done, status = acme.authorization(acct, authz.authz_id)
    _, order_status = acme.order(acct, order.order_id)
    assert events.seen == [("http-01", None if correct else "incorrectResponse")]
    if correct:
        assert (status, done.challenges[0].status, order_status) == (Status.VALID,) * 2 + (
            Status.READY,
        )
        assert done.challenges[0].validated_at is not None
    else:
        assert (status, order_status) == (Status.INVALID, Status.INVALID)
        error = done.challenges[0].error
        assert error is not None and error.kind == "incorrectResponse"


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (the kernel's backlog), never reads
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        fetch = Http01Fetcher(
            AddressGuard(allow_loopback=True),
            timeout=0.5,
            resolve={"slow.test": f"127.0.0.1:{port}"},
        )
        with pytest.raises(AcmeError) as caught:
            fetch("slow.test", "token")
    assert caught.value.kind == "connection" and "timed out" in str(caught.value)


def test_a_validation_lost_with_its_process_starts_again(store: SqlStore) -> None:
    """A process that died while validating leaves the challenge processing; once that is
    older than `Lifetimes.stale`, the client's next poll starts it again, here."""
    clock = FixedClock(dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC))
    lost: list[Callable[[], None]] = []  # submitted, never run: the process died
    acct = account(store)
    fetch = BlockingFetch()
    dying = AcmeService(
        SqlAcmeRepository(store), clock, _refuse, lambda *_: None, lambda *_: None,
        fetch, lost.append, Lifetimes(stale=dt.timedelta(minutes=1)),
    )  # fmt: skip
    order = dying.new_order(
        acct, {"identifiers": [{"type": "dns", "value": "a.web.internal"}]}, "services"
    )
    challenge = dying.authorization(acct, order.authz_ids[0])[0].challenges[0]
    assert dying.respond(acct, challenge.challenge_id)[0].status is Status.PROCESSING
    assert len(lost) == 1
    survivor, threads = service(store, fetch)
    survivor.clock = clock
    survivor.lifetimes = Lifetimes(stale=dt.timedelta(minutes=1))
    survivor.authorization(acct, order.authz_ids[0])  # not stale yet: nothing starts
    assert threads == []
    clock.advance(dt.timedelta(minutes=2))
    fetch.body = key_authorization(challenge.token, acct.thumbprint).encode()
    fetch.answer.set()
    survivor.authorization(acct, order.authz_ids[0])  # the poll finds it stale
    assert len(threads) == 1
    threads[0].join(30)
    authz, status = survivor.authorization(acct, order.authz_ids[0])
    assert status is Status.VALID and authz.challenges[0].status is Status.VALID


def test_an_unexpected_issuance_failure_leaves_the_order_invalid(store: SqlStore) -> None:
    """A bug in issuance must not leave the order processing for good."""
    acme, _ = service(store, BlockingFetch())
    acct = account(store)
    names = {"identifiers": [{"type": "dns", "value": "a.web.internal"}]}
    order = acme.new_order(acct, names, "services")
    authz = acme.authorization(acct, order.authz_ids[0])[0]
    acme.repo.finish_challenge(authz.challenges[0], Status.VALID, dt.datetime.now(dt.UTC), None)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.web.internal")]), False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(AssertionError, match="not issuing"):
        acme.finalize(acct, order.order_id, {"csr": b64encode(csr.public_bytes(Encoding.DER))})
    done, status = acme.order(acct, order.order_id)
    assert status is Status.INVALID and done.error is not None
    assert done.error.kind == "serverInternal"
