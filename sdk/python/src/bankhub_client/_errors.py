"""The SDK's exceptions: one class per family of bankhub's error codes.

bankhub answers a failure in the envelope ``{"error": Code, "message", "extra"}`` with the HTTP
status of docs/api.md's error table; ``/oauth/*`` answer in OAuth's own format
(``{"error", "error_description"}``). Both become an :class:`APIError` subclass chosen by the
code first (``CredentialInvalid`` is a 400 but an authentication failure) and else by the status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BankhubError",
    "ConflictError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "WebhookVerificationError",
]


class BankhubError(Exception):
    """Every exception the SDK raises."""


class APIConnectionError(BankhubError):
    """bankhub could not be reached, or the connection failed before an answer (after retries)."""


class APITimeoutError(APIConnectionError):
    """The request timed out (after retries)."""


class ResponseDecodeError(BankhubError):
    """A success answer did not match the model the SDK expected."""


class WebhookVerificationError(BankhubError):
    """A webhook's signature, timestamp or headers do not check out."""


class APIError(BankhubError):
    """bankhub answered with an error.

    ``code`` is the envelope's ``error`` (``"LoginNotFound"``, or OAuth's ``"invalid_client"``),
    ``extra`` its ``extra`` object, ``status`` the HTTP status and ``request_id`` the answer's
    ``X-Request-Id``: quote it when asking the operator about a call.
    """

    def __init__(
        self,
        *,
        code: str,
        message: str,
        extra: Mapping[str, Any],
        status: int,
        request_id: str | None,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.message = message
        self.extra: dict[str, Any] = dict(extra)
        self.status = status
        self.request_id = request_id
        self.headers: dict[str, str] = dict(headers)


class AuthenticationError(APIError):
    """The credential is missing, wrong, revoked or expired, or a request signature failed."""


class PermissionDeniedError(AuthenticationError):
    """The credential is right but may not do this (scope, IP allow-list, referer, HTTPS)."""


class NotFoundError(APIError):
    """The customer, login, account, payment, key or path named does not exist for this app."""


class RateLimitError(APIError):
    """A rate limit is used up or the address is blocked; ``retry_after`` in seconds."""

    @property
    def retry_after(self) -> float | None:
        from bankhub_client._retry import parse_retry_after

        return parse_retry_after(self.headers.get("retry-after"))


class InvalidRequestError(APIError):
    """The request is malformed or its data invalid (``extra.problems`` lists what)."""


class ConflictError(APIError):
    """The request clashes with the state: an existing customer, an Idempotency-Key in use."""


class ServerError(APIError):
    """bankhub or the bank failed (5xx): maintenance, the bank unreachable, an internal error."""


_AUTH_CODES = frozenset(
    {
        "CredentialInvalid",
        "ClientNotFound",
        "KeyRevoked",
        "InvalidToken",
        "SignatureInvalid",
        "SignatureExpired",
        "SignatureReplayed",
        "SignatureRequired",
        "invalid_client",
        "invalid_grant",
        "invalid_token",
    }
)
_PERMISSION_CODES = frozenset(
    {"InsufficientScope", "AddressNotAllowed", "RefererNotAllowed", "HttpsRequired", "AppArchived"}
)
_CONFLICT_CODES = frozenset({"CustomerExists", "IdempotencyKeyReused", "IdempotencyKeyInProgress"})


def error_class(code: str, status: int) -> type[APIError]:
    if code in _AUTH_CODES:
        return AuthenticationError
    if code in _PERMISSION_CODES:
        return PermissionDeniedError
    if code in _CONFLICT_CODES or status == 409:
        return ConflictError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    if status == 404:
        return NotFoundError
    if status in (401, 403):
        return AuthenticationError
    return InvalidRequestError
