"""Email notifications against a real SMTP server (aiosmtpd) on loopback: STARTTLS with a
certificate pkiforge issued, a login, the message a person reads; refused, with a clear error
and without the password, where STARTTLS or the server's certificate is missing."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError

from pkiforge.ca.events import EMAIL_ENDPOINT, DeliveryStatus, EventType
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.clock import FixedClock
from pkiforge.notify.email import SUBJECTS
from pkiforge.settings import EmailSettings, NotificationSettings
from pkiforge.wiring import Pki, build_pki, notification_sender
from tests.ca.helpers import NOW, PASSPHRASE, csr_bytes, make_settings
from tests.conftest import DATA

PASSWORD = "smtp-password-0123456789"  # the test server's, found in no error


@dataclass
class Mailbox:
    port: int = 0
    messages: list[tuple[list[str], Message]] = field(default_factory=list)
    over_tls: list[bool] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.box.messages.append(
            (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
        )
        self.box.over_tls.append(session.ssl is not None)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(tls: ssl.SSLContext | None) -> Iterator[Mailbox]:
    box = Mailbox(_free_port())

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == PASSWORD
        if ok:
            box.logins.append(data.login.decode())
        return AuthResult(success=ok)

    controller = Controller(
        _Handler(box),
        hostname="127.0.0.1",
        port=box.port,
        tls_context=tls,
        require_starttls=tls is not None,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def _pki(home: Path, email: dict[str, Any]) -> Pki:
    home.mkdir(parents=True, exist_ok=True)
    (home / "smtp.password").write_text(PASSWORD + "\n")
    settings = make_settings(home).model_copy(
        update={
            "notifications": NotificationSettings(
                timeout_seconds=5, email=EmailSettings.model_validate(email)
            )
        }
    )
    pki = build_pki(settings, PASSPHRASE, FixedClock(NOW))
    pki.hierarchy.initialize(InitOptions())
    return pki


def _server_tls(pki: Pki, folder: Path) -> ssl.SSLContext:
    """The SMTP server's TLS: a certificate for 127.0.0.1 that pkiforge issued."""
    request = pki.certificates.request_from_csr(
        csr_bytes("p256"), service_id="smtp", extra_names=["IP:127.0.0.1"]
    )
    record = pki.certificates.issue(request)
    assert record.certificate is not None
    issuer = pki.ctx.get_ca(record.issuer).certificate
    assert issuer is not None
    chain = folder / "smtp-chain.pem"
    chain.write_bytes(
        record.certificate.public_bytes(Encoding.PEM) + issuer.public_bytes(Encoding.PEM)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, DATA / "key-p256.pem")
    return context


def _root(pki: Pki, home: Path) -> str:
    root = pki.ctx.get_ca("root").certificate
    assert isinstance(root, x509.Certificate)
    (home / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    return "root.pem"


EMAIL = {
    "host": "127.0.0.1",
    "username": "pkiforge",
    "password_file": "smtp.password",
    "from": "pkiforge@example.internal",
    "to": ["ops@example.internal"],
    "to_by_event": {"certificate.revoked": ["security@example.internal"]},
}


def _revoke_and_deliver(pki: Pki) -> str:
    request = pki.certificates.request_from_csr(csr_bytes("p256"), service_id="web")
    record = pki.certificates.issue(request)
    pki.revocation.revoke(record.serial, x509.ReasonFlags.key_compromise)
    sender = notification_sender(pki)
    try:
        pki.notifications.deliver_due(sender)
    finally:
        sender.close()
    return record.serial_hex


def test_an_event_is_mailed_over_starttls_to_its_recipients(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pki = _pki(home, {**EMAIL, "port": 1})  # the port is set once the server runs
    try:
        tls = _server_tls(pki, tmp_path)
        with smtp_server(tls) as box:
            email = {**EMAIL, "port": box.port, "ca_file": _root(pki, home)}
            pki.settings.notifications.email = EmailSettings.model_validate(email)
            serial = _revoke_and_deliver(pki)
        [delivery] = pki.notifications.list()
        assert delivery.endpoint == EMAIL_ENDPOINT
        assert delivery.status is DeliveryStatus.DELIVERED, delivery.last_error
    finally:
        pki.close()
    assert box.over_tls == [True] and box.logins == ["pkiforge"]
    [(recipients, mail)] = box.messages
    assert recipients == ["ops@example.internal", "security@example.internal"]
    assert mail["Subject"] == f"[pkiforge] certificate {serial} of web revoked (keyCompromise)"
    assert mail["From"] == "pkiforge@example.internal"
    text = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert mail.get_content_type() == "text/plain"
    assert f"serial: {serial}" in text and "service: web" in text
    assert "What to do: stop using this certificate" in text
    assert delivery.event.event_id in text


@pytest.mark.parametrize("offered", ["no-starttls", "untrusted"])
def test_a_server_without_starttls_or_a_trusted_certificate_is_refused(
    tmp_path: Path, offered: str
) -> None:
    home = tmp_path / "home"
    pki = _pki(home, {**EMAIL, "port": 1})
    try:
        tls = _server_tls(pki, tmp_path) if offered == "untrusted" else None
        with smtp_server(tls) as box:
            # "untrusted": the system's roots do not know pkiforge's CA
            pki.settings.notifications.email = EmailSettings.model_validate(
                {**EMAIL, "port": box.port}
            )
            _revoke_and_deliver(pki)
        [delivery] = pki.notifications.list()
    finally:
        pki.close()
    assert box.messages == [] and box.logins == []
    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 1
    error = delivery.last_error or ""
    if offered == "no-starttls":
        assert "does not offer STARTTLS" in error and "nothing was sent" in error
    else:
        assert "certificate did not verify" in error
    assert PASSWORD not in error


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"starttls": False}, "never sent without STARTTLS"),
        ({"to": [], "to_by_event": {}}, "give recipients"),
        ({"password_file": None}, "go together"),
        ({"to": ["ops@example.internal\r\nBcc: x@evil.example"]}, "to"),
        ({"from": "no-at-sign"}, "from"),
        ({"to_by_event": {"cert.unknown": ["a@b.c"]}}, "to_by_event"),
    ],
    ids=["login-without-tls", "no-recipients", "user-without-password", "header-break",
         "bad-from", "unknown-event"],
)  # fmt: skip
def test_email_settings_that_cannot_work_are_refused(change: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        EmailSettings.model_validate({**EMAIL, "port": 587, **change})


def test_email_gets_only_the_event_types_with_a_recipient() -> None:
    settings = EmailSettings.model_validate(
        {**EMAIL, "to": [], "to_by_event": {"certificate.expiring": ["team@example.internal"]}}
    )
    assert settings.recipients("certificate.expiring") == ["team@example.internal"]
    assert settings.recipients("certificate.revoked") == []


def test_every_event_type_has_a_subject() -> None:
    assert set(SUBJECTS) == {t.value for t in EventType}
