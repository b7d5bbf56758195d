"""TOTP (RFC 6238) and recovery codes (S4), written out here: it is short and worth reading.

A seed is 160 random bits (the RFC 4226 recommendation), stored encrypted. A code is accepted
for the current 30-second step or one step either side, and only for a step newer than the last
one accepted, so no code works twice. Recovery codes are 50 random bits each, stored as keyed
hashes and removed when used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from datetime import datetime
from urllib.parse import quote, urlencode

import segno

STEP_SECONDS = 30
DIGITS = 6
#: steps either side of now that are still accepted (clock drift, typing time)
WINDOW = 1
SEED_BYTES = 20
RECOVERY_CODES = 10
ISSUER = "bankhub"


def new_seed() -> bytes:
    return secrets.token_bytes(SEED_BYTES)


def seed_text(seed: bytes) -> str:
    """The seed as authenticator apps take it: base32, without padding."""
    return base64.b32encode(seed).decode("ascii").rstrip("=")


def step_of(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def code_at(seed: bytes, step: int) -> str:
    """RFC 4226 HOTP of the step counter (HMAC-SHA-1, dynamic truncation)."""
    digest = hmac.new(seed, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def matching_step(seed: bytes, code: str, now: datetime, last_step: int | None) -> int | None:
    """The step ``code`` belongs to, if it is within the window and newer than ``last_step``."""
    # spaces and dashes as an app groups the digits ("123 456", "123-456")
    given = "".join(ch for ch in code if not ch.isspace() and ch != "-")
    if len(given) != DIGITS or not given.isdigit():
        return None
    current = step_of(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        # every candidate is compared, in constant time, whatever matched before
        if hmac.compare_digest(code_at(seed, step), given) and found is None:
            found = step
    if found is None or (last_step is not None and found <= last_step):
        return None
    return found


def provisioning_uri(seed: bytes, account: str) -> str:
    label = quote(f"{ISSUER}:{account}")
    query = urlencode(
        {
            "secret": seed_text(seed),
            "issuer": ISSUER,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        }
    )
    return f"otpauth://totp/{label}?{query}"


def qr_data_uri(uri: str) -> str:
    """The QR code of ``uri`` as an SVG data URI (no script; the page CSP allows data: images)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4, border=2))


def new_recovery_codes() -> list[str]:
    """Ten codes of ten base32 characters (50 bits), written ``xxxxx-xxxxx``."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = base64.b32encode(secrets.token_bytes(7)).decode("ascii").lower()[:10]
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def normalise_recovery_code(text: str) -> str:
    raw = "".join(ch for ch in text.lower() if ch.isalnum())
    return f"{raw[:5]}-{raw[5:]}" if len(raw) == 10 else ""
