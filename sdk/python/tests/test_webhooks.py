"""Webhook verification, checked against the ``standardwebhooks`` package (an independent
implementation of the scheme) and against a real delivery from the session's server."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from sdk_support import Bankhub, Linked
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as TheirError

from bankhub_client import WebhookVerificationError, webhooks

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
NOW = 1_800_000_000
BODY = b'{"status":"login_success","login_id":7,"event_type":"login.status"}'


def _headers(signature: str, timestamp: int = NOW, msg_id: str = "evt_42") -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def _theirs(secret: str, timestamp: int = NOW, msg_id: str = "evt_42") -> str:
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return str(Webhook(secret).sign(msg_id, when, BODY.decode()))


def test_a_signature_made_by_standardwebhooks_verifies() -> None:
    event = webhooks.verify(BODY, _headers(_theirs(SECRET)), SECRET, now=lambda: NOW)
    assert event.id == "evt_42"
    assert event.event_id == 42
    assert event.type == "login.status"
    assert event.payload["login_id"] == 7
    assert event.timestamp == NOW


def test_our_signature_verifies_with_standardwebhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    signature = webhooks.sign(SECRET, "evt_42", NOW, BODY)
    assert signature == _theirs(SECRET)
    # their verifier reads the wall clock; a fresh timestamp keeps it within its window
    fresh = int(datetime.now(UTC).timestamp())
    headers = _headers(webhooks.sign(SECRET, "evt_9", fresh, BODY), fresh, "evt_9")
    assert Webhook(SECRET).verify(BODY, headers)["login_id"] == 7


def test_any_of_several_signatures_and_secrets_verifies() -> None:
    both = f"{_theirs(OTHER)} {_theirs(SECRET)}"
    assert webhooks.verify(BODY, _headers(both), SECRET, now=lambda: NOW).id == "evt_42"
    rolling = [OTHER, SECRET]
    assert webhooks.verify(BODY, _headers(_theirs(SECRET)), rolling, now=lambda: NOW)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(BODY, _headers(_theirs(OTHER)), SECRET, now=lambda: NOW)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (BODY.replace(b"7", b"8"), _headers(_theirs(SECRET))),  # the body changed
        (BODY, _headers(_theirs(SECRET), msg_id="evt_43")),  # the id changed
        (BODY, _headers(_theirs(SECRET), timestamp=NOW + 1)),  # the timestamp changed
        (BODY, _headers("v2," + _theirs(SECRET)[3:])),  # an unknown version
        (BODY, {"webhook-id": "evt_42", "webhook-timestamp": str(NOW)}),  # no signature
    ],
)
def test_what_standardwebhooks_refuses_is_refused(body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body, headers, SECRET, now=lambda: NOW)


def test_a_timestamp_outside_the_tolerance_is_refused() -> None:
    headers = _headers(_theirs(SECRET))
    assert webhooks.verify(BODY, headers, SECRET, now=lambda: NOW + 300)
    with pytest.raises(WebhookVerificationError, match="from now"):
        webhooks.verify(BODY, headers, SECRET, now=lambda: NOW + 301)
    with pytest.raises(WebhookVerificationError, match="from now"):
        webhooks.verify(BODY, headers, SECRET, now=lambda: NOW - 301)
    assert webhooks.verify(BODY, headers, SECRET, tolerance=1000, now=lambda: NOW + 900)


def test_a_real_delivery_verifies_with_both(bankhub: Bankhub, linked: Linked) -> None:
    delivery = bankhub.receiver.wait("transactions.new")
    event = webhooks.verify(delivery.body, delivery.headers, bankhub.app.webhook_secret)
    assert event.type == "transactions.new"
    assert event.payload["login_id"] == linked.login_id
    assert event.event_id is not None
    theirs = Webhook(bankhub.app.webhook_secret).verify(delivery.body, delivery.headers)
    assert theirs == json.loads(delivery.body)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(delivery.body + b" ", delivery.headers, bankhub.app.webhook_secret)
    with pytest.raises(TheirError):
        Webhook(bankhub.app.webhook_secret).verify(delivery.body + b" ", delivery.headers)
