"""The seed's error envelope at the edge: a domain error becomes an HTTP answer.

Every failure leaves bankhub as ``{"error": code, "message": text, "extra": {...}}`` with the HTTP
status the seed's table gives the code. Services raise :class:`bankhub.errors.DomainError`
(``bankhub.errors``); the app's exception handlers (``bankhub.api.handlers``) turn it into the
envelope here, and anything else into a generic ``InternalError`` without leaking internals (S32).
"""

from __future__ import annotations

from typing import Any

from bankhub.api.schemas import wire_time
from bankhub.errors import CooldownActive, DomainError, ErrorCode, RefreshFailed, Throttled

__all__ = ["STATUS", "DomainError", "ErrorCode", "Refusal", "body", "headers", "status"]

#: The seed's table (code → HTTP status), plus the codes added beyond it above.
STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.ACCOUNT_NOT_FOUND: 404,
    ErrorCode.CLIENT_NOT_FOUND: 404,
    ErrorCode.CONNECT_ERROR: 503,
    ErrorCode.CONTENT_INPUT_INVALID: 400,
    ErrorCode.CREDENTIAL_INVALID: 400,
    ErrorCode.CUSTOMER_CREATE_ERROR: 500,
    ErrorCode.CUSTOMER_EXISTS: 400,
    ErrorCode.CUSTOMER_NOT_FOUND: 404,
    ErrorCode.DATA_INVALID: 400,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.LOGIN_NOT_FOUND: 404,
    ErrorCode.SERVER_MAINTENANCE: 503,
    ErrorCode.SERVICE_NOT_FOUND: 404,
    ErrorCode.TOKEN_CREATE_ERROR: 500,
    ErrorCode.TOKEN_EXPIRE: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.KEY_REVOKED: 401,
    ErrorCode.INSUFFICIENT_SCOPE: 403,
    ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.IDEMPOTENCY_MISMATCH: 422,
    ErrorCode.IDEMPOTENCY_IN_PROGRESS: 409,
    ErrorCode.ADDRESS_NOT_ALLOWED: 403,
    ErrorCode.REFERER_NOT_ALLOWED: 403,
    ErrorCode.ADDRESS_BLOCKED: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.HTTPS_REQUIRED: 403,
    ErrorCode.PAYMENT_NOT_FOUND: 404,
    ErrorCode.PAYMENTS_NOT_ENABLED: 403,
    ErrorCode.PAYMENT_LIMIT_REACHED: 429,
    ErrorCode.PAYMENT_NOT_CANCELLABLE: 409,
    ErrorCode.PAYMENT_NOT_EXPORTABLE: 409,
    ErrorCode.SIGNATURE_INVALID: 401,
    ErrorCode.SIGNATURE_EXPIRED: 401,
    ErrorCode.SIGNATURE_REPLAYED: 401,
    ErrorCode.SIGNATURE_REQUIRED: 401,
    ErrorCode.APP_ARCHIVED: 403,
}


class Refusal(DomainError):
    """A refusal made by the edge itself (a method not allowed), with HTTP header fields of its
    own (``Allow``) that its answer carries."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        extra: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(code, message, extra, retry_after=retry_after)
        self.headers = dict(headers or {})


def status(error: DomainError) -> int:
    return STATUS[error.code]


def headers(error: DomainError) -> dict[str, str]:
    """The HTTP headers an error's answer carries beyond the envelope."""
    sent = dict(error.headers) if isinstance(error, Refusal) else {}
    if isinstance(error, Throttled):
        if error.policy is not None:
            sent["RateLimit-Policy"] = error.policy
        if error.state is not None:
            sent["RateLimit"] = error.state
    if error.challenge is not None:
        sent["WWW-Authenticate"] = error.challenge
    if error.retry_after is not None:
        sent["Retry-After"] = str(error.retry_after)
    return sent


def body(error: DomainError) -> dict[str, Any]:
    """The seed's envelope of ``error``; times a typed error carries are written as the wire
    writes every time."""
    message, extra = error.message, error.extra
    if isinstance(error, CooldownActive):
        last = error.last_refresh_at
        when = wire_time(error.next_possible_at)
        message = f"Login {error.login_id} can be refreshed again at {when}"
        extra = {
            **extra,
            "last_refresh_at": wire_time(last) if last else None,
            "next_refresh_possible_at": wire_time(error.next_possible_at),
        }
    elif isinstance(error, RefreshFailed):
        extra = {**extra, "next_refresh_possible_at": wire_time(error.next_possible_at)}
    return {"error": str(error.code), "message": message, "extra": extra}
