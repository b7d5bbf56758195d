"""Standard Webhooks signing (S37): secrets, signatures and the headers sent with a delivery."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret  # nosec B105
USER_AGENT = "bankhub-webhooks/1"


def new_secret() -> str:
    """Return a fresh endpoint secret: ``whsec_`` followed by 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"webhook secret is not valid base64 after {SECRET_PREFIX!r}") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _check_msg_id(msg_id: str) -> None:
    # The id goes into a header and into the signed string; CR/LF or spaces would break both.
    if not msg_id or not msg_id.isascii() or not msg_id.isprintable() or " " in msg_id:
        raise ValueError("webhook id must be non-empty printable ASCII without spaces")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return ``v1,<base64 HMAC-SHA256(key, f"{msg_id}.{timestamp}.{body}")>``.

    ``secret`` is a ``whsec_`` secret; the HMAC key is the base64-decoded part after the prefix.
    ``timestamp`` is in unix seconds. Raises ValueError for a malformed secret or id.
    """
    key = _key(secret)
    _check_msg_id(msg_id)
    if timestamp < 0:
        raise ValueError("webhook timestamp must be non-negative unix seconds")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """Return the headers of one delivery attempt.

    One ``v1`` signature per secret, space-separated, current secret first: during rotation the
    receiver accepts the message with either the old or the new secret. ``msg_id`` must stay the
    same on every retry of an event; ``timestamp`` is the time of this attempt (receivers reject
    stale timestamps), so sign again for each attempt.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
