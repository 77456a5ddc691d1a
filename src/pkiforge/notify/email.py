"""Email delivery over SMTP, upgraded with STARTTLS (RFC 3207) before anything is sent.

Each event is one plain-text message to the recipients its type has: what happened, the
certificate (service, serial, names, expiry, days left), what to do, and the event id. A
server that does not offer STARTTLS, or whose certificate does not verify, is refused before
any password or message crosses the connection (fail closed); the error says why and never
holds the password.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from pkiforge.ca.events import Event
from pkiforge.ca.notifications import DeliveryFailed

SUBJECTS = {
    "certificate.expiring": "certificate {serial} of {service} expires in {days_left} days",
    "certificate.renewed": "certificate of {service} renewed: {serial}",
    "certificate.revoked": "certificate {serial} of {service} revoked ({reason})",
    "ca.rotated": "CA {ca} rotated: {successor} issues from now on",
    "ca.expiring": "CA {ca} expires in {days_left} days",
    "scheduler.failed": "scheduled job {job} failed",
}
_ORDER = ("service", "serial", "common_name", "names", "issuer", "not_after", "days_left")


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    starttls: bool
    context: ssl.SSLContext
    username: str | None = None
    password: str | None = None  # read from a file at start; never in a message or error
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"SmtpServer({self.host!r}, {self.port})"


def message(event: Event, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The plain-text message of `event`: what the webhook payload says, for people."""
    data = event.data
    fields = _Fields(data)
    subject = SUBJECTS.get(event.type.value, event.type.value).format_map(fields)
    lines = [f"pkiforge: {event.type.value} at {event.occurred_at.isoformat()}", ""]
    for key in (*_ORDER, *sorted(k for k in data if k not in _ORDER and k != "action")):
        if key in data and data[key] is not None:
            value = data[key]
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            lines.append(f"{key}: {shown}")
    if "action" in data:
        lines += ["", f"What to do: {data['action']}"]
    lines += ["", f"event id: {event.event_id} (the webhook-id of the same event)"]
    mail = EmailMessage()
    mail["Subject"] = f"[pkiforge] {subject}"
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = format_datetime(event.occurred_at)
    mail["Message-ID"] = make_msgid(idstring=event.event_id.replace("_", "-"), domain="pkiforge")
    mail.set_content("\n".join(lines) + "\n")
    return mail


class _Fields(dict[str, Any]):
    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__({k: ", ".join(v) if isinstance(v, list) else v for k, v in data.items()})

    def __missing__(self, key: str) -> str:
        return "?"


class EmailSender:
    """The `Sender` of ca/notifications.py for the `email:smtp` endpoint."""

    def __init__(
        self,
        server: SmtpServer,
        sender: str,
        recipients: Callable[[str], Sequence[str]],
    ) -> None:
        self.server = server
        self.sender = sender
        self.recipients = recipients

    def send(self, endpoint: str, event: Event) -> None:
        to = list(self.recipients(event.type.value))
        if not to:
            raise DeliveryFailed(f"no email recipient is configured for {event.type.value}")
        mail = message(event, self.sender, to)
        s = self.server
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                smtp.ehlo()
                if s.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryFailed(
                            f"the SMTP server {s.host}:{s.port} does not offer STARTTLS, which "
                            "notifications.email.starttls requires: nothing was sent"
                        )
                    smtp.starttls(context=s.context)
                    smtp.ehlo()
                if s.username is not None and s.password is not None:
                    smtp.login(s.username, s.password)
                smtp.send_message(mail, from_addr=self.sender, to_addrs=to)
        except DeliveryFailed:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryFailed(
                f"the SMTP server's certificate did not verify ({exc.verify_message})"
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(
                f"the SMTP server refused the login (SMTP {exc.smtp_code})"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed(
                f"the SMTP server refused the recipients {sorted(exc.recipients)}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(
                f"the SMTP server answered {exc.smtp_code}: {_text(exc.smtp_error)}"
            ) from None
        except TimeoutError:
            raise DeliveryFailed(f"the SMTP server {s.host}:{s.port} timed out") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(
                f"could not send through {s.host}:{s.port} ({type(exc).__name__})"
            ) from None

    def close(self) -> None:
        pass


def _text(raw: bytes | str) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())[:200]
