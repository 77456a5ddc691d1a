"""The agent keeps the identity's CA bundle in step with the PKI: fetched with each renewal
and between renewals, installed only when every root trusted here stays and every other
certificate is a CA one of them signed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from pkiforge.client import AgentConfig, Identity, Outcome, PkiClient, RenewalAgent, RenewalPolicy
from pkiforge.client.bundle import checked_bundle
from pkiforge.clock import FixedClock
from pkiforge.errors import IntegrityError
from pkiforge.renewal import Backoff
from tests.client.conftest import BASE
from tests.client.fake_api import TOKEN, FakeApi, problem
from tests.client.fakeca import FakeCA, _key, pem

BUNDLE = "/api/v1/ca/bundle"


def ca_cert(subject: str, issuer: x509.Certificate | None, key_name: str, *, ca: bool = True,
            signer: str = "key-p256.pem") -> x509.Certificate:  # fmt: skip
    """A certificate for a committed key, signed by `signer` (self-signed when no issuer)."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(_key(key_name).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(_key(signer), hashes.SHA256())
    )


@pytest.fixture
def fake() -> FakeCA:
    return FakeCA()


def successor(fake: FakeCA) -> x509.Certificate:
    """The rotated intermediate: same subject, another key, signed by the same root."""
    return ca_cert("Fake Services", fake.root, "key-p384.pem")


@pytest.fixture
def setup(tmp_path: Path, fake: FakeCA) -> tuple[FakeApi, Identity]:
    api, identity = FakeApi(ca=fake), Identity.in_dir(tmp_path / "svc")
    with PkiClient(BASE, verify=False, transport=api.transport()) as pki:
        pki.enroll(TOKEN, ["svc.internal"], identity)
    # enrolment installs the server's bundle (checked against the chain's root)
    assert x509.load_pem_x509_certificates(identity.ca.read_bytes()) == [
        fake.intermediate,
        fake.root,
    ]
    return api, identity


def make_agent(
    api: FakeApi, identity: Identity, at: dt.timedelta, bundle_interval: float | None = 600.0
) -> tuple[RenewalAgent, FixedClock, list[str]]:
    events: list[str] = []
    clock = FixedClock(identity.certificate().not_valid_before_utc + at)
    agent = RenewalAgent(
        AgentConfig(identity, RenewalPolicy(jitter=0), Backoff(initial=0.01, cap=0.02), 0.05,
                    bundle_interval=bundle_interval),
        lambda _i: PkiClient(BASE, identity=None, verify=False, transport=api.transport()),
        on_renew=lambda cert: events.append(f"renewed {cert.serial}"),
        on_bundle=lambda: events.append("bundle"),
        clock=clock,
    )  # fmt: skip
    return agent, clock, events


def trusted(identity: Identity) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(identity.ca.read_bytes())


def fetches(api: FakeApi) -> int:
    return sum(r.url.path == BUNDLE for r in api.requests)


def test_between_renewals_the_bundle_is_fetched_once_per_interval(
    setup: tuple[FakeApi, Identity], fake: FakeCA
) -> None:
    api, identity = setup
    agent, clock, events = make_agent(api, identity, dt.timedelta(minutes=10))
    assert agent.check() is Outcome.NOT_DUE  # the first pass fetches: the same, no news
    assert trusted(identity) == [fake.intermediate, fake.root] and events == []
    assert agent.check() is Outcome.NOT_DUE  # within the interval: no request
    assert fetches(api) == 2  # enrolment's, then the first pass's
    after = successor(fake)
    api.bundle = pem(after) + pem(fake.intermediate) + pem(fake.root)  # rotated
    clock.advance(dt.timedelta(seconds=601))
    assert agent.check() is Outcome.NOT_DUE
    assert trusted(identity) == [after, fake.intermediate, fake.root]
    assert events == ["bundle"] and fetches(api) == 3
    clock.advance(dt.timedelta(seconds=601))
    assert agent.check() is Outcome.NOT_DUE  # fetched again, unchanged: nothing announced
    assert events == ["bundle"] and fetches(api) == 4


def test_a_renewal_installs_the_bundle_before_the_pair(
    setup: tuple[FakeApi, Identity], fake: FakeCA
) -> None:
    api, identity = setup
    agent, _clock, events = make_agent(api, identity, dt.timedelta(minutes=41), None)
    after = successor(fake)
    api.bundle = pem(after) + pem(fake.intermediate) + pem(fake.root)
    assert agent.check() is Outcome.RENEWED
    assert trusted(identity) == [after, fake.intermediate, fake.root]
    assert len(events) == 1 and events[0].startswith("renewed")  # the reload covers both


def test_no_bundle_interval_fetches_with_renewals_only(setup: tuple[FakeApi, Identity]) -> None:
    api, identity = setup
    agent, _clock, events = make_agent(api, identity, dt.timedelta(minutes=10), None)
    before = len(api.requests)
    assert agent.check() is Outcome.NOT_DUE
    # the server's renewal policy, read once (tests/agent/test_agent.py), and no bundle
    paths = [r.url.path for r in api.requests[before:]]
    assert paths == ["/api/v1/renewal-policy"] and events == []
    assert agent.check() is Outcome.NOT_DUE and len(api.requests) == before + 1


def test_a_bundle_that_cannot_be_fetched_does_not_stop_a_renewal(
    setup: tuple[FakeApi, Identity], fake: FakeCA
) -> None:
    api, identity = setup
    agent, _clock, events = make_agent(api, identity, dt.timedelta(minutes=41))
    old = identity.certificate().serial_number
    original = api.handle

    def no_bundle(request):  # type: ignore[no-untyped-def]
        if request.url.path == BUNDLE:
            return problem(503, "unavailable", "down")
        return original(request)

    api.handle = no_bundle  # type: ignore[method-assign]
    assert agent.check() is Outcome.RENEWED
    assert identity.certificate().serial_number != old
    assert trusted(identity) == [fake.intermediate, fake.root]  # unchanged; fetched later
    assert len(events) == 1


@pytest.mark.parametrize(
    ("served", "reason"),
    [
        ("foreign-root", "leaves out the root trusted here"),
        ("foreign-ca", "which no root trusted here signed"),
        ("leaf-signed-by-root", "which no root trusted here signed"),
        ("garbage", "not a list of PEM certificates"),
    ],
)
def test_a_bundle_that_would_change_the_anchors_is_refused(
    setup: tuple[FakeApi, Identity], fake: FakeCA, served: str, reason: str
) -> None:
    api, identity = setup
    other_root = ca_cert("Other Root", None, "key-p384.pem", signer="key-p384.pem")
    bundles = {
        "foreign-root": pem(fake.intermediate) + pem(other_root),
        "foreign-ca": pem(ca_cert("Fake Services", other_root, "key-p256-b.pem",
                                  signer="key-p384.pem")) + pem(fake.root),
        "leaf-signed-by-root": pem(ca_cert("leaf", fake.root, "key-p384.pem", ca=False))
        + pem(fake.root),
        "garbage": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    }  # fmt: skip
    with pytest.raises(IntegrityError, match=reason):
        checked_bundle(identity.ca.read_bytes(), bundles[served].encode())
    api.bundle = bundles[served]
    agent, _clock, events = make_agent(api, identity, dt.timedelta(minutes=10))
    before = identity.ca.read_bytes()
    assert agent.check() is Outcome.NOT_DUE  # logged; the certificate is fine
    assert identity.ca.read_bytes() == before and events == []


def test_enrolment_keeps_the_root_alone_when_the_bundle_is_refused(
    tmp_path: Path, fake: FakeCA
) -> None:
    other_root = ca_cert("Other Root", None, "key-p384.pem", signer="key-p384.pem")
    api = FakeApi(ca=fake, bundle=pem(fake.intermediate) + pem(other_root))
    identity = Identity.in_dir(tmp_path / "svc")
    with PkiClient(BASE, verify=False, transport=api.transport()) as pki:
        pki.enroll(TOKEN, ["svc.internal"], identity)
    assert trusted(identity) == [fake.root]
