"""Signatures checked by the independent `standardwebhooks` verifier."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bankhub.webhooks.signing import new_secret, sign, webhook_headers

BODY = json.dumps({"type": "transactions.updated", "data": {"login_id": "lg_1"}}).encode()


def test_new_secret_is_whsec_with_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_one_secret_verifies_and_headers_are_complete() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = webhook_headers("msg_1", now, BODY, [secret])
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "bankhub-webhooks/1"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_rotation_sends_both_signatures_and_either_secret_verifies() -> None:
    new, old = new_secret(), new_secret()
    headers = webhook_headers("msg_2", int(time.time()), BODY, [new, old])
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert signatures[0] == sign(new, "msg_2", int(headers["webhook-timestamp"]), BODY)
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_tampered_body_fails() -> None:
    secret = new_secret()
    headers = webhook_headers("msg_3", int(time.time()), BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"lg_1", b"lg_2"), headers)


def test_tampered_timestamp_or_id_fails() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = webhook_headers("msg_4", now, BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-timestamp": str(now - 1)})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_5"})


def test_known_vector() -> None:
    # The example from the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("whsec_not*base64!", "not valid base64"),
        ("whsec_", "empty"),
    ],
)
def test_bad_secret_is_refused_clearly(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sign(secret, "msg_1", 1, BODY)


@pytest.mark.parametrize("msg_id", ["", "msg\r\nx-evil: 1", "msg 1"])
def test_bad_id_is_refused(msg_id: str) -> None:
    with pytest.raises(ValueError, match="webhook id"):
        sign(new_secret(), msg_id, 1, BODY)


def test_no_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        webhook_headers("msg_1", 1, BODY, [])
