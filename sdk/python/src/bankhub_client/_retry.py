"""When to send a request again, and after how long.

A request is sent again only when doing so cannot carry it out twice: a ``GET``, or a write
that carries an ``Idempotency-Key`` (bankhub answers the second copy from the first; docs/api.md
"Idempotency-Key"). It is sent again after a connection failure or timeout, on 429 (a rate
limit), 503 (maintenance, the bank unreachable) and 409 ``IdempotencyKeyInProgress`` (the first
copy still runs). The wait is the answer's ``Retry-After`` when it has one (seconds or an HTTP
date), else exponential backoff with full jitter, capped; a ``Retry-After`` longer than
``max_retry_after`` (an address blocked for 15 minutes) is not waited for: the error is raised.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RetryPolicy", "parse_retry_after"]

RETRY_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110: delay-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; asctime forms parse without a zone
        return None
    return max(0.0, when.timestamp() - now())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_retries`` further attempts at most; backoff ``min(cap, base * 2**n)``, jittered."""

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    #: a longer ``Retry-After`` raises at once instead of blocking the caller
    max_retry_after: float = 60.0

    def delay(
        self, attempt: int, retry_after: float | None, random: Callable[[], float]
    ) -> float | None:
        """Seconds before attempt ``attempt + 1`` (``attempt`` from 0), or None: do not retry."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return random() * min(self.backoff_cap, self.backoff_base * (2.0**attempt))
