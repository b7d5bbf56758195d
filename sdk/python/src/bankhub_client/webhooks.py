"""Verify bankhub's webhook deliveries (Standard Webhooks, docs/webhooks.md).

A delivery is a ``POST`` of a JSON body with ``webhook-id`` (``evt_<event id>``, the same on
every retry), ``webhook-timestamp`` (unix seconds of the attempt) and ``webhook-signature``:
one or more space-separated ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``, where
``key`` is the base64 part of the endpoint's ``whsec_`` secret. While a secret rolls, each
delivery carries one signature per secret; :func:`verify` accepts the message when any
signature matches any of the secrets it is given.

The HMAC check itself is a few lines of the standard library; a dependency on the
``standardwebhooks`` package would bring its own HTTP client and models to every partner.
The SDK's tests check these functions against that package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from bankhub_client._errors import WebhookVerificationError

__all__ = ["DEFAULT_TOLERANCE", "WebhookEvent", "sign", "verify"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: how far a delivery's timestamp may be from now, either way (seconds)
DEFAULT_TOLERANCE = 300


class WebhookEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A verified delivery: its ``webhook-id``, type (``event_type``) and the whole body."""

    id: str
    type: str
    timestamp: int
    payload: dict[str, Any]

    @property
    def event_id(self) -> int | None:
        """bankhub's event id (``GET /v2/event/{id}``), from ``webhook-id`` ``evt_<id>``."""
        prefix, _, number = self.id.partition("_")
        return int(number) if prefix == "evt" and number.isdigit() else None


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a webhook secret is base64 after {SECRET_PREFIX!r}") from exc
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<signature>`` of one message: what bankhub sends, for tests of a receiver."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return (
        "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()
    )


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"the {name} header is missing")


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | Iterable[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: Callable[[], float] = time.time,
) -> WebhookEvent:
    """Check a delivery and return its event; raise :class:`WebhookVerificationError` if its
    signature matches none of ``secret`` (one ``whsec_`` secret, or several while rolling), its
    timestamp is more than ``tolerance`` seconds from now, or a header is missing.

    ``body`` must be the raw bytes received, before any JSON parsing."""
    raw = body.encode() if isinstance(body, str) else body
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    sent = _header(headers, "webhook-signature")
    if not stamp.isascii() or not stamp.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not unix seconds")
    timestamp = int(stamp)
    if abs(now() - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is more than {tolerance} s from now: a replay, or a wrong clock"
        )
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("give at least one webhook secret")
    expected = [sign(s, msg_id, timestamp, raw).encode() for s in secrets]
    for candidate in sent.split():
        version, _, _ = candidate.partition(",")
        if version != "v1":
            continue
        if any(hmac.compare_digest(candidate.encode(), e) for e in expected):
            break
    else:
        raise WebhookVerificationError("no webhook-signature matches the secret")
    try:
        payload = msgspec.json.decode(raw, type=dict[str, Any])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WebhookVerificationError("the body is not a JSON object") from exc
    kind = payload.get("event_type")
    return WebhookEvent(
        id=msg_id,
        type=kind if isinstance(kind, str) else _header_or(headers, "bankhub-event"),
        timestamp=timestamp,
        payload=payload,
    )


def _header_or(headers: Mapping[str, str], name: str) -> str:
    try:
        return _header(headers, name)
    except WebhookVerificationError:
        return ""
