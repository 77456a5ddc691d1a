"""The agent's decisions against the fake API: renew when due, retry what may pass, keep files."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from pkiforge.client import AgentConfig, Identity, Outcome, PkiClient, RenewalAgent, RenewalPolicy
from pkiforge.clock import FixedClock
from pkiforge.errors import AuthenticationFailed, StoreUnavailable
from pkiforge.renewal import Backoff
from tests.agent.pairs import serial_of_pair
from tests.client.conftest import BASE
from tests.client.fake_api import TOKEN, FakeApi, problem
from tests.client.fakeca import FakeCA


@pytest.fixture
def setup(tmp_path: Path) -> tuple[FakeApi, Identity]:
    api, identity = FakeApi(), Identity.in_dir(tmp_path / "svc")
    with PkiClient(BASE, verify=False, transport=api.transport()) as pki:
        pki.enroll(TOKEN, ["svc.internal"], identity)
    return api, identity


def make_agent(
    api: FakeApi, identity: Identity, at: dt.timedelta, **config: object
) -> tuple[RenewalAgent, list[str]]:
    renewed: list[str] = []
    clock = FixedClock(identity.certificate().not_valid_before_utc + at)
    agent = RenewalAgent(
        AgentConfig(identity, RenewalPolicy(jitter=0), Backoff(initial=0.01, cap=0.02), 0.05,
                    **config),  # type: ignore[arg-type]
        lambda ident: PkiClient(BASE, identity=None, verify=False, transport=api.transport()),
        on_renew=lambda cert: renewed.append(cert.serial),
        clock=clock,
    )  # fmt: skip
    return agent, renewed


def test_not_due_means_no_request(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    agent, renewed = make_agent(api, identity, dt.timedelta(minutes=30))
    before = len(api.requests)
    assert agent.check() is Outcome.NOT_DUE
    # nothing but the server's renewal policy and the CA bundle, read on the first pass
    # (tests/agent/test_agent_bundle.py)
    paths = [r.url.path for r in api.requests[before:]]
    assert paths == ["/api/v1/renewal-policy", "/api/v1/ca/bundle"]
    assert agent.check() is Outcome.NOT_DUE
    assert len(api.requests) == before + 2  # neither is asked again
    assert renewed == []


def test_the_servers_renewal_margin_is_the_default(tmp_path: Path) -> None:
    """A year-long certificate: 2/3 of its lifetime would be day 243; the server says 30 days
    before expiry, so the agent renews from day 335 on."""
    api = FakeApi(ca=FakeCA(validity=dt.timedelta(days=365)))
    identity = Identity.in_dir(tmp_path / "svc")
    with PkiClient(BASE, verify=False, transport=api.transport()) as pki:
        pki.enroll(TOKEN, ["svc.internal"], identity)
        assert pki.renewal_policy().renew_before == dt.timedelta(days=30)
    agent, renewed = make_agent(api, identity, dt.timedelta(days=100))
    assert agent.check() is Outcome.NOT_DUE  # reads the server's policy
    assert agent.policy.server_margin == dt.timedelta(days=30)
    clock = agent.clock
    assert isinstance(clock, FixedClock)
    clock.advance(dt.timedelta(days=150))  # day 250: past 2/3, not within 30 days
    assert agent.check() is Outcome.NOT_DUE and renewed == []
    clock.advance(dt.timedelta(days=86))  # day 336
    assert agent.check() is Outcome.RENEWED and len(renewed) == 1


def test_an_explicit_margin_wins_and_the_server_is_not_asked(
    setup: tuple[FakeApi, Identity],
) -> None:
    api, identity = setup
    agent = RenewalAgent(
        AgentConfig(identity, RenewalPolicy(renew_before=dt.timedelta(minutes=5), jitter=0)),
        lambda ident: PkiClient(BASE, identity=None, verify=False, transport=api.transport()),
        clock=FixedClock(identity.certificate().not_valid_before_utc + dt.timedelta(minutes=50)),
    )
    assert agent.check() is Outcome.NOT_DUE  # 2/3 would be due; 5 minutes before is not
    assert "/api/v1/renewal-policy" not in [r.url.path for r in api.requests]


def test_a_server_that_cannot_say_leaves_the_fraction(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    api.fail.append(problem(503, "unavailable", "database down"))
    agent, _ = make_agent(api, identity, dt.timedelta(minutes=30))
    assert agent.check() is Outcome.NOT_DUE and agent.policy.server_margin is None
    agent.check()  # asked again on the next pass
    assert agent.policy.server_margin == dt.timedelta(days=30)


def test_due_renews_with_a_new_key_and_runs_the_hook(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    old_key, old = identity.key.read_bytes(), serial_of_pair(identity.cert, identity.key)
    agent, renewed = make_agent(api, identity, dt.timedelta(minutes=41))
    assert agent.check() is Outcome.RENEWED
    assert identity.key.read_bytes() != old_key
    assert format(serial_of_pair(identity.cert, identity.key), "x") == renewed[0]
    assert api.certs[format(old, "x")]["status"] == "superseded"
    assert api.requests[-2].url.path.endswith(f"/{old:x}/renew")  # then the CA bundle


def test_reuse_key_keeps_the_key(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    old_key = identity.key.read_bytes()
    agent, _ = make_agent(api, identity, dt.timedelta(minutes=41), reuse_key=True)
    assert agent.check() is Outcome.RENEWED
    assert identity.key.read_bytes() == old_key


def test_once_retries_transient_failures_then_succeeds(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    old = serial_of_pair(identity.cert, identity.key)
    api.fail += [problem(503, "unavailable", "database down")] * 2
    agent, renewed = make_agent(api, identity, dt.timedelta(minutes=50))
    assert agent.run_once(attempts=3) is Outcome.RENEWED
    assert serial_of_pair(identity.cert, identity.key) != old and len(renewed) == 1


def test_once_gives_up_with_the_last_error_and_leaves_the_files(
    setup: tuple[FakeApi, Identity],
) -> None:
    api, identity = setup
    old = identity.cert.read_bytes()
    api.fail += [problem(503, "unavailable", "database down")] * 3
    agent, _ = make_agent(api, identity, dt.timedelta(minutes=50))
    with pytest.raises(StoreUnavailable):
        agent.run_once(attempts=3)
    assert identity.cert.read_bytes() == old


def test_a_refusal_is_not_retried(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    api.fail += [problem(401, "unauthenticated", "certificate revoked")]
    agent, _ = make_agent(api, identity, dt.timedelta(minutes=50))
    with pytest.raises(AuthenticationFailed):
        agent.run_once(attempts=5)
    assert len(api.fail) == 0


def test_run_keeps_going_until_stopped(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    api.fail += [problem(503, "unavailable", "down")]
    agent, renewed = make_agent(api, identity, dt.timedelta(minutes=50))
    stop = threading.Event()
    worker = threading.Thread(target=agent.run, args=(stop,))
    worker.start()
    deadline = threading.Event()
    for _ in range(100):
        if renewed:
            break
        deadline.wait(0.05)
    stop.set()
    worker.join(5)
    assert not worker.is_alive() and len(renewed) == 1  # the renewed certificate is not due


def test_library_auto_renewal_calls_back_and_stops(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    old = serial_of_pair(identity.cert, identity.key)
    done = threading.Event()
    pki = PkiClient(BASE, identity=identity, transport=api.transport())
    with pki, pki.enable_auto_renewal("3599s", on_renew=lambda _c: done.set()) as renewal:
        assert done.wait(10)
        assert renewal.running
    assert not renewal.running
    assert serial_of_pair(identity.cert, identity.key) != old


def test_async_client_auto_renewal_swaps_its_context_without_the_loop(
    setup: tuple[FakeApi, Identity],
) -> None:
    import asyncio

    from pkiforge.client import AsyncPkiClient

    api, identity = setup
    old = serial_of_pair(identity.cert, identity.key)

    async def main() -> tuple[bool, bool, object]:
        done = threading.Event()
        async with AsyncPkiClient(BASE, identity=identity, transport=api.transport()) as pki:
            assert pki.ssl_context is not None
            with pki.enable_auto_renewal("3599s", on_renew=lambda _c: done.set()) as renewal:
                # the loop stays free while the renewal thread works
                renewed = await asyncio.to_thread(done.wait, 10)
                running = renewal.running
            health = await pki.healthz()  # and the client still works afterwards
            return renewed, running and not renewal.running, health

    renewed, stopped, health = asyncio.run(main())
    assert renewed and stopped
    assert health
    assert serial_of_pair(identity.cert, identity.key) != old
