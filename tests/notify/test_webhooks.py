"""notify/webhooks: requests signed the Standard Webhooks way, verified by its own library."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import socket
from pathlib import Path

import pytest

from pkiforge.ca.events import Event, EventType
from pkiforge.ca.notifications import DeliveryFailed
from pkiforge.errors import InvalidInput
from pkiforge.notify.webhooks import Endpoint, WebhookSender, new_secret, secret_key

from .receiver import receiving

EVENT = Event(
    "evt_0123",
    EventType.CERTIFICATE_EXPIRING,
    dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC),
    "web",
    {"serial": "0a1b", "days_left": 7},
)


def _sender(url: str, secret: str) -> WebhookSender:
    return WebhookSender({"ops": Endpoint("ops", url, secret_key(secret, name="ops"))}, timeout=5)


def test_a_delivery_verifies_with_the_standard_webhooks_library() -> None:
    with receiving() as box:
        sender = _sender(box.url, box.secret)
        sender.send("ops", EVENT)
        sender.send("ops", EVENT)  # a retry: the same webhook-id, for the receiver to dedupe
        sender.close()
    assert box.refused == 0
    assert box.ids == ["evt_0123", "evt_0123"]
    assert box.received[0] == {
        "type": "certificate.expiring",
        "timestamp": "2026-03-01T12:00:00+00:00",
        "data": {"serial": "0a1b", "days_left": 7},
    }


def test_the_signature_is_what_the_docs_say() -> None:
    """docs/operations.md's recipe, by hand with hmac: the key is the base64-decoded part of
    the secret after `whsec_`, not the secret's own bytes."""
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    recipe = " ".join(docs.split())
    assert "with the base64-decoded part of the secret after `whsec_` as the key" in recipe
    with receiving() as box:
        sender = _sender(box.url, box.secret)
        sender.send("ops", EVENT)
        sender.close()
    [(headers, body)] = box.raw
    key = base64.b64decode(box.secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{mac}"


def test_a_wrong_secret_does_not_verify() -> None:
    with receiving() as box:
        sender = _sender(box.url, new_secret())
        with pytest.raises(DeliveryFailed, match="HTTP 401"):
            sender.send("ops", EVENT)
    assert box.refused == 1 and box.received == []


def test_an_answer_other_than_2xx_is_a_failed_attempt() -> None:
    with receiving(status=500) as box, pytest.raises(DeliveryFailed, match="answered HTTP 500"):
        _sender(box.url, box.secret).send("ops", EVENT)


def test_an_unreachable_endpoint_fails_without_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(DeliveryFailed) as caught:
        _sender(f"http://127.0.0.1:{port}/hook", new_secret()).send("ops", EVENT)
    assert "127.0.0.1" not in str(caught.value) and str(port) not in str(caught.value)


def test_an_endpoint_no_longer_configured_fails_its_delivery() -> None:
    with pytest.raises(DeliveryFailed, match="no webhook named 'gone'"):
        _sender("http://127.0.0.1:9/", new_secret()).send("gone", EVENT)


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("A" * 44, "must start with 'whsec_'"),
        ("whsec_not*base64", "not valid base64"),
        ("whsec_" + "QUJD", "at least 24 bytes"),
    ],
    ids=["no-prefix", "not-base64", "too-short"],
)
def test_a_malformed_secret_is_refused_without_showing_it(secret: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as caught:
        secret_key(secret, name="ops")
    assert secret not in str(caught.value) and "'ops'" in str(caught.value)
