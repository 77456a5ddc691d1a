"""A service's own webhook: its certificate events, signed with its own secret, delivered
on their own (a real receiver verifies each with the `standardwebhooks` package)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509

from pkiforge.actor import OPERATOR
from pkiforge.ca.events import DeliveryStatus, EventType
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.models import CertificateRecord
from pkiforge.ca.registry_models import ServiceRecord
from pkiforge.ca.service_webhooks import check_url
from pkiforge.clock import FixedClock
from pkiforge.errors import InvalidInput, NotFound
from pkiforge.scheduler.jobs import EXPIRY_SCAN
from pkiforge.settings import NotificationSettings, WebhookSettings
from pkiforge.wiring import Pki, build_pki, build_scheduler, notification_sender
from tests.notify.receiver import receiving

from .helpers import NOW, PASSPHRASE, csr_bytes, make_settings

DEAD = "http://127.0.0.1:9/ops"  # the discard port: nothing listens


def _pki(home: Path, clock: FixedClock, *, loopback: bool, hooks: Sequence[str] = ()) -> Pki:
    home.mkdir(parents=True, exist_ok=True)
    notifications = NotificationSettings(
        allow_loopback_http=loopback,
        webhooks=[
            WebhookSettings.model_validate(
                {"name": name, "url": DEAD, "secret": "whsec_" + "A" * 44}
            )
            for name in hooks
        ],
    )
    settings = make_settings(home).model_copy(update={"notifications": notifications})
    return build_pki(settings, PASSPHRASE, clock)


def _register(pki: Pki, service_id: str) -> None:
    with pki.store.transaction() as tx:
        tx.services.add(ServiceRecord(service_id, service_id, NOW, NOW))


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Pki]:
    made = _pki(tmp_path / "home", FixedClock(NOW), loopback=True, hooks=["ops"])
    made.hierarchy.initialize(InitOptions())
    for service in ("web", "db"):
        _register(made, service)
    yield made
    made.close()


def issue(pki: Pki, service_id: str) -> CertificateRecord:
    request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id=service_id)
    return pki.certificates.issue(request)


def test_a_service_gets_its_own_certificate_events_signed_with_its_own_secret(pki: Pki) -> None:
    hook, secret = pki.service_webhooks.set(OPERATOR, "web", "https://hooks.example/later")
    assert secret is not None and secret.startswith("whsec_")
    # the receiver verifies with the secret the service was shown; the URL moves to it
    with receiving(secret=secret) as verified:
        pki.service_webhooks.set(OPERATOR, "web", verified.url)
        mine = issue(pki, "web")
        pki.revocation.revoke(issue(pki, "db").serial, x509.ReasonFlags.superseded)
        renewed = pki.certificates.renew(mine.serial)
        pki.revocation.revoke(renewed.serial, x509.ReasonFlags.key_compromise)
        sender = notification_sender(pki)
        try:
            report = pki.notifications.deliver_due(sender)
        finally:
            sender.close()
    assert verified.refused == 0
    # web's own: its renewal and its revocation, not db's revocation
    assert [b["type"] for b in verified.received] == ["certificate.renewed", "certificate.revoked"]
    assert {b["data"]["service"] for b in verified.received} == {"web"}
    assert verified.received[1]["data"]["serial"] == renewed.serial_hex
    # each endpoint retries on its own: the global one is down, the service's was delivered
    by_endpoint = {(d.endpoint, d.event.type): d.status for d in pki.notifications.list()}
    assert by_endpoint[("service:web", EventType.CERTIFICATE_REVOKED)] is DeliveryStatus.DELIVERED
    assert by_endpoint[("ops", EventType.CERTIFICATE_REVOKED)] is DeliveryStatus.PENDING
    assert report.delivered == 2 and report.retrying == 3
    assert hook.secret not in repr(hook)


def test_the_secret_is_made_once_and_kept_until_rotated(pki: Pki) -> None:
    first, secret = pki.service_webhooks.set(OPERATOR, "web", "https://hooks.example/a")
    moved, again = pki.service_webhooks.set(OPERATOR, "web", "https://hooks.example/b")
    assert again is None and moved.secret == first.secret == secret
    assert moved.created_at == first.created_at
    rotated, new = pki.service_webhooks.set(
        OPERATOR, "web", "https://hooks.example/b", rotate_secret=True
    )
    assert new is not None and new != secret and rotated.secret == new
    assert pki.service_webhooks.get("web").url == "https://hooks.example/b"


def test_clearing_stops_new_events_and_fails_the_pending_ones(pki: Pki) -> None:
    pki.service_webhooks.set(OPERATOR, "web", "https://hooks.example/a")
    pki.revocation.revoke(issue(pki, "web").serial, x509.ReasonFlags.superseded)
    pki.service_webhooks.clear(OPERATOR, "web")
    pki.revocation.revoke(issue(pki, "web").serial, x509.ReasonFlags.superseded)
    endpoints = [d.endpoint for d in pki.notifications.list()]
    assert endpoints.count("service:web") == 1  # only the event from before the clear
    sender = notification_sender(pki)
    try:
        report = pki.notifications.deliver_due(sender)
    finally:
        sender.close()
    assert "service 'web' has no webhook any more" in " ".join(report.errors)
    with pytest.raises(NotFound, match="has no webhook"):
        pki.service_webhooks.clear(OPERATOR, "web")


def test_an_unknown_service_gets_no_webhook(pki: Pki) -> None:
    with pytest.raises(NotFound, match="no service 'nope'"):
        pki.service_webhooks.set(OPERATOR, "nope", "https://hooks.example/a")


def test_a_url_the_settings_no_longer_allow_fails_closed_when_sent(
    tmp_path: Path, pki: Pki
) -> None:
    """Set while plain http to loopback was allowed; sent after it no longer is."""
    pki.service_webhooks.set(OPERATOR, "web", "http://127.0.0.1:9/web")
    pki.revocation.revoke(issue(pki, "web").serial, x509.ReasonFlags.superseded)
    clock = pki.ctx.clock
    assert isinstance(clock, FixedClock)
    strict = _pki(tmp_path / "home", clock, loopback=False)
    sender = notification_sender(strict)
    try:
        report = strict.notifications.deliver_due(sender)
    finally:
        sender.close()
        strict.close()
    [error] = [e for e in report.errors if "service:web" in e]
    assert "refused" in error and "must use https" in error


@pytest.mark.parametrize(
    ("url", "loopback", "says"),
    [
        ("http://127.0.0.1:8080/hook", False, "must use https"),
        ("http://hooks.example/hook", True, "must use https"),
        ("ftp://hooks.example/hook", True, "https:// URL with a host"),
        ("https:///nohost", False, "with a host"),
        ("https://user:pw@hooks.example/", False, "user name or password"),
        ("https://hooks.example/#frag", False, "fragment"),
        ("https://hooks.example:99999/", False, "not a valid URL"),
        ("https://hooks.example/a b", False, "spaces"),
    ],
    ids=["http", "http-remote", "ftp", "no-host", "userinfo", "fragment", "port", "space"],
)
def test_a_webhook_url_pkiforge_will_not_send_to_is_refused(
    url: str, loopback: bool, says: str
) -> None:
    with pytest.raises(InvalidInput, match=says) as caught:
        check_url(url, allow_loopback_http=loopback)
    assert caught.value.field == "url"
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("https://hooks.example/x", False),
        ("https://10.0.0.5:8443/x?a=1", False),
        ("http://127.0.0.1:8080/hook", True),
        ("http://[::1]:8080/hook", True),
        ("http://localhost/hook", True),
    ],
    ids=["https", "https-ip", "loopback-v4", "loopback-v6", "localhost"],
)
def test_webhook_urls_that_are_taken(url: str, loopback: bool) -> None:
    assert check_url(url, allow_loopback_http=loopback) == url


def test_an_expiring_certificate_goes_to_its_service(pki: Pki) -> None:
    pki.service_webhooks.set(OPERATOR, "web", "https://hooks.example/a")
    request = pki.certificates.request_from_csr(
        csr_bytes("p256"), service_id="web", validity=dt.timedelta(days=31)
    )
    pki.certificates.issue(request)
    clock = pki.ctx.clock
    assert isinstance(clock, FixedClock)
    clock.advance(dt.timedelta(days=2))
    build_scheduler(pki.settings, pki).run_due(only=[EXPIRY_SCAN], force=True)
    endpoints = sorted(
        d.endpoint
        for d in pki.notifications.list()
        if d.event.type is EventType.CERTIFICATE_EXPIRING
    )
    assert endpoints == ["ops", "service:web"]
