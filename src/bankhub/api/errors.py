"""The seed's error envelope and its table of codes.

Every failure leaves bankhub as ``{"error": code, "message": text, "extra": {...}}`` with the HTTP
status the seed's table gives the code. Services raise :class:`ApiError`; the app's exception
handlers turn anything else into a generic ``InternalError`` without leaking internals (S32).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    BAD_REQUEST = "BadRequest"
    ACCOUNT_NOT_FOUND = "AccountNotFound"
    CLIENT_NOT_FOUND = "ClientNotFound"
    CONNECT_ERROR = "ConnectError"
    CONTENT_INPUT_INVALID = "ContentInputInvalid"
    CREDENTIAL_INVALID = "CredentialInvalid"
    CUSTOMER_CREATE_ERROR = "CustomerCreateError"
    CUSTOMER_EXISTS = "CustomerExists"
    CUSTOMER_NOT_FOUND = "CustomerNotFound"
    DATA_INVALID = "DataInvalid"
    INTERNAL_ERROR = "InternalError"
    LOGIN_NOT_FOUND = "LoginNotFound"
    SERVER_MAINTENANCE = "ServerMaintenance"
    SERVICE_NOT_FOUND = "ServiceNotFound"
    TOKEN_CREATE_ERROR = "TokenCreateError"  # noqa: S105 - an error code  # nosec B105
    TOKEN_EXPIRE = "TokenExpire"  # noqa: S105 - an error code  # nosec B105
    # beyond the seed's table: plain HTTP conditions that have no seed code
    NOT_FOUND = "NotFound"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    # beyond the seed: keys with scopes and bearer tokens (S2, S10)
    KEY_REVOKED = "KeyRevoked"
    INSUFFICIENT_SCOPE = "InsufficientScope"
    INVALID_TOKEN = "InvalidToken"  # noqa: S105 - an error code  # nosec B105
    # beyond the seed: Idempotency-Key (S40)
    IDEMPOTENCY_MISMATCH = "IdempotencyKeyReused"
    IDEMPOTENCY_IN_PROGRESS = "IdempotencyKeyInProgress"
    # beyond the seed's table: edge protections (S17, S18, S26, S33)
    ADDRESS_NOT_ALLOWED = "AddressNotAllowed"
    REFERER_NOT_ALLOWED = "RefererNotAllowed"
    ADDRESS_BLOCKED = "AddressBlocked"
    RATE_LIMITED = "RateLimited"
    HTTPS_REQUIRED = "HttpsRequired"


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
}

#: The seed's wording for each code, used when a more specific message is not needed.
DEFAULT_MESSAGE: dict[ErrorCode, str] = {
    ErrorCode.BAD_REQUEST: "Invalid Request",
    ErrorCode.ACCOUNT_NOT_FOUND: "Account is not found",
    ErrorCode.CLIENT_NOT_FOUND: "Can't find client with your id",
    ErrorCode.CONNECT_ERROR: "We're temporarily offline. Please try again later.",
    ErrorCode.CONTENT_INPUT_INVALID: "Only allow data type application/json",
    ErrorCode.CREDENTIAL_INVALID: "Credentials is invalid",
    ErrorCode.CUSTOMER_CREATE_ERROR: "Can't create new customer. Please try later.",
    ErrorCode.CUSTOMER_EXISTS: "Your customer is exists",
    ErrorCode.CUSTOMER_NOT_FOUND: "Can't find your customer.",
    ErrorCode.DATA_INVALID: "Data is invalid",
    ErrorCode.INTERNAL_ERROR: "Sorry server is crash. Please try again.",
    ErrorCode.LOGIN_NOT_FOUND: "Login is not found",
    ErrorCode.SERVER_MAINTENANCE: "Servers are currently undergoing maintenance. Please try later",
    ErrorCode.SERVICE_NOT_FOUND: "Service is not found",
    ErrorCode.TOKEN_CREATE_ERROR: "Can't create a token. Please try again.",
    ErrorCode.TOKEN_EXPIRE: "Your token is expired. Please create new token.",
    ErrorCode.NOT_FOUND: "No such resource",
    ErrorCode.METHOD_NOT_ALLOWED: "Method not allowed on this resource",
    ErrorCode.KEY_REVOKED: "This key has been revoked or has expired",
    ErrorCode.INSUFFICIENT_SCOPE: "This credential's scope does not allow this call",
    ErrorCode.INVALID_TOKEN: "The access token is invalid or has expired",
    ErrorCode.IDEMPOTENCY_MISMATCH: "This Idempotency-Key was used with a different request",
    ErrorCode.IDEMPOTENCY_IN_PROGRESS: "A request with this Idempotency-Key is still running",
    ErrorCode.ADDRESS_NOT_ALLOWED: "Requests from this address are not allowed for this app",
    ErrorCode.REFERER_NOT_ALLOWED: "Requests from this page are not allowed for this key",
    ErrorCode.ADDRESS_BLOCKED: "This address is blocked after too many failed authentications",
    ErrorCode.RATE_LIMITED: "Too many requests. Please slow down and retry later.",
    ErrorCode.HTTPS_REQUIRED: "This API is only served over HTTPS",
}


class ApiError(Exception):
    """A failure the partner should see, in the seed's envelope."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        extra: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGE[code]
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict[str, Any]:
        return {"error": str(self.code), "message": self.message, "extra": self.extra}
