"""bankhub-client: a typed Python client of bankhub's partner API (``/v2``, ``/oauth``)."""

from bankhub_client import webhooks
from bankhub_client._client import AsyncBankhubClient, BankhubClient
from bankhub_client._core import Introspection, OAuthToken
from bankhub_client._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BankhubError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    WebhookVerificationError,
)
from bankhub_client._models import *  # noqa: F403 - every model of /openapi.json
from bankhub_client._models import __all__ as _model_names
from bankhub_client._retry import RetryPolicy
from bankhub_client._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncBankhubClient",
    "AuthenticationError",
    "BankhubClient",
    "BankhubError",
    "ConflictError",
    "Introspection",
    "InvalidRequestError",
    "NotFoundError",
    "OAuthToken",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseDecodeError",
    "RetryPolicy",
    "ServerError",
    "WebhookVerificationError",
    "__version__",
    "webhooks",
    *_model_names,
]
