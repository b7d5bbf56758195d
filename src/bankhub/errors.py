"""bankhub's domain errors: what went wrong, named by the seed's error codes.

Services, the sync layer and the job runner raise these; they know nothing of HTTP. The API's
edge (``bankhub.api.errors``) maps each to the seed's envelope ``{"error", "message", "extra"}``
and its HTTP status; the CLI prints them; the connect page and the dashboard show them as pages.
A typed error (:class:`CooldownActive`, :class:`LoginBusy`, ...) carries what its answer needs as
values, so that the edge, not the service, decides how a value is written on the wire.
"""

from __future__ import annotations

from datetime import datetime
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
    # beyond the seed: payment initiation (docs/payments.md)
    PAYMENT_NOT_FOUND = "PaymentNotFound"
    PAYMENTS_NOT_ENABLED = "PaymentsNotEnabled"
    PAYMENT_LIMIT_REACHED = "PaymentLimitReached"
    PAYMENT_NOT_CANCELLABLE = "PaymentNotCancellable"
    PAYMENT_NOT_EXPORTABLE = "PaymentNotExportable"
    # beyond the seed: signed requests (RFC 9421, docs/signatures.md)
    SIGNATURE_INVALID = "SignatureInvalid"
    SIGNATURE_EXPIRED = "SignatureExpired"
    SIGNATURE_REPLAYED = "SignatureReplayed"
    SIGNATURE_REQUIRED = "SignatureRequired"
    # beyond the seed: an app the team archived (docs/dashboard.md)
    APP_ARCHIVED = "AppArchived"


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
    ErrorCode.PAYMENT_NOT_FOUND: "Payment is not found",
    ErrorCode.PAYMENTS_NOT_ENABLED: "Payment initiation is not switched on for this app",
    ErrorCode.PAYMENT_LIMIT_REACHED: "This app's daily payment limit is reached",
    ErrorCode.PAYMENT_NOT_CANCELLABLE: "The bank no longer allows this payment to be cancelled",
    ErrorCode.PAYMENT_NOT_EXPORTABLE: "This payment cannot be exported as a pain.001 file",
    ErrorCode.SIGNATURE_INVALID: "The request's signature is invalid",
    ErrorCode.SIGNATURE_EXPIRED: "The request's signature is expired or not yet valid",
    ErrorCode.SIGNATURE_REPLAYED: "The request's signature was already used",
    ErrorCode.SIGNATURE_REQUIRED: "This app requires signed requests",
    ErrorCode.APP_ARCHIVED: "This app is archived: its keys and tokens are refused until it is "
    "restored",
}


class DomainError(Exception):
    """A failure the caller should see, with the seed's code for it.

    ``challenge`` is the authentication scheme a refused credential should retry with (the edge
    sends it as ``WWW-Authenticate``); ``retry_after`` the seconds after which trying again may
    succeed (``Retry-After``).
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        extra: dict[str, Any] | None = None,
        *,
        challenge: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGE[code]
        self.extra = extra or {}
        self.challenge = challenge
        self.retry_after = retry_after
        super().__init__(f"{code}: {self.message}")


class NotFound(DomainError):
    """Something the caller named does not exist (for the caller): a customer, login, account,
    service, event, key or endpoint, each with its own seed code."""


class InvalidInput(DomainError):
    """The request is well formed but what it asks for cannot be done as asked."""

    def __init__(
        self,
        message: str | None = None,
        extra: dict[str, Any] | None = None,
        *,
        code: ErrorCode = ErrorCode.BAD_REQUEST,
    ) -> None:
        super().__init__(code, message, extra)


class CooldownActive(DomainError):
    """A manual refresh asked for within the login's cool-down. The times stay values: the edge
    writes them in the wire's format."""

    def __init__(
        self, login_id: int, last_refresh_at: datetime | None, next_possible_at: datetime
    ) -> None:
        self.login_id = login_id
        self.last_refresh_at = last_refresh_at
        self.next_possible_at = next_possible_at
        super().__init__(
            ErrorCode.BAD_REQUEST,
            f"Login {login_id} can be refreshed again at {next_possible_at.isoformat()}",
            {"id": login_id, "refreshed": False},
        )


class LoginBusy(DomainError):
    """Another run holds the login's lease: a manual refresh is refused, a scheduled one steps
    back and leaves the login to the run that holds it."""

    def __init__(self, login_id: int) -> None:
        self.login_id = login_id
        super().__init__(
            ErrorCode.BAD_REQUEST,
            f"Login {login_id} is being refreshed right now; try again in a moment",
            {"id": login_id, "refreshed": False, "refreshing": True},
        )


class RefreshFailed(DomainError):
    """The bank could not be reached or refused for now (``ConnectError``)."""

    def __init__(
        self,
        message: str,
        *,
        login_id: int,
        status: str,
        next_possible_at: datetime | None,
        retry_after: int | None,
    ) -> None:
        self.login_id = login_id
        self.status = status
        self.next_possible_at = next_possible_at
        super().__init__(
            ErrorCode.CONNECT_ERROR,
            message,
            {"login_id": login_id, "status": status},
            retry_after=retry_after,
        )


class Throttled(DomainError):
    """Too many requests for a limit (``RateLimited``, ``AddressBlocked``): ``policy`` names the
    limits in force and ``state`` what is left of each, in the notation of the IETF's RateLimit
    fields (the edge sends them as ``RateLimit-Policy`` and ``RateLimit``)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        extra: dict[str, Any] | None = None,
        *,
        retry_after: int,
        policy: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(code, message, extra, retry_after=retry_after)
        self.policy = policy
        self.state = state
