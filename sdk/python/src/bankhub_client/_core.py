"""What the blocking and the asyncio client share: building requests, reading answers and
errors, retry decisions, the OAuth2 token cache. Only the sending loops differ between them."""

from __future__ import annotations

import base64
import platform
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import msgspec

from bankhub_client._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ResponseDecodeError,
    error_class,
)
from bankhub_client._retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from bankhub_client._version import __version__

T = TypeVar("T")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
USER_AGENT = (
    f"bankhub-client/{__version__} python/{platform.python_version()} httpx/{httpx.__version__}"
)
#: renew an access token this long before bankhub says it expires
TOKEN_RENEW_MARGIN = 60.0

Files = dict[str, tuple[str, bytes | IO[bytes]]]


class Signer(Protocol):
    """Signs a request before it is sent (``bankhub_client.signing.RequestSigner``)."""

    def sign(self, request: httpx.Request) -> None: ...


class OAuthToken(msgspec.Struct, kw_only=True, frozen=True):
    """``POST /oauth/token``'s answer (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str | None = None
    refresh_token: str | None = None


class Introspection(msgspec.Struct, kw_only=True, frozen=True):
    """``POST /oauth/introspect``'s answer (RFC 7662); only ``active`` for an inactive token."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    aud: str | None = None
    iss: str | None = None


@dataclass(slots=True)
class _CachedToken:
    value: str
    renew_at: float


class TokenCache:
    """One access token, renewed ``TOKEN_RENEW_MARGIN`` before its end or when refused."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._token: _CachedToken | None = None

    def current(self) -> str | None:
        token = self._token
        if token is None or self._clock() >= token.renew_at:
            return None
        return token.value

    def store(self, issued: OAuthToken, asked_at: float) -> str:
        margin = min(TOKEN_RENEW_MARGIN, issued.expires_in / 2)
        self._token = _CachedToken(issued.access_token, asked_at + issued.expires_in - margin)
        return issued.access_token

    def drop(self, value: str) -> None:
        if self._token is not None and self._token.value == value:
            self._token = None


def _drop_unset(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v is not msgspec.UNSET}


def _query_value(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class Core:
    """Configuration and the parts of a call that do not wait on the network."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        service_secret: str | None,
        app_secret: str | None,
        use_oauth: bool,
        scope: str | None,
        retry: RetryPolicy,
        user_agent: str | None,
        signer: Signer | None,
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        if not client_id:
            raise ValueError("client_id is required")
        if service_secret is None and app_secret is None:
            raise ValueError("give service_secret or app_secret")
        if service_secret is not None and app_secret is not None:
            raise ValueError("give one of service_secret and app_secret, not both")
        if use_oauth and service_secret is None:
            # bankhub's token endpoint authenticates a server's key; an app key sits in code
            # that anyone can read (docs/api.md, OAuth2)
            raise ValueError("oauth=True takes a service_secret (a server's key)")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.service_secret = service_secret
        self.app_secret = app_secret
        self.use_oauth = use_oauth
        self.scope = scope
        self.retry = retry
        self.user_agent = f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT
        self.signer = signer
        self.clock = clock
        self.random = random
        self.tokens = TokenCache(clock)

    # -- requests ---------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"user-agent": self.user_agent, "accept": "application/json"}

    def secret(self) -> str:
        secret = self.service_secret if self.service_secret is not None else self.app_secret
        assert secret is not None  # noqa: S101 - the constructor requires one
        return secret

    def credential_headers(self, token: str | None) -> dict[str, str]:
        if token is not None:
            return {"authorization": f"Bearer {token}"}
        if self.service_secret is not None:
            return {"client-id": self.client_id, "service-secret": self.service_secret}
        return {"client-id": self.client_id, "app-secret": self.secret()}

    def basic(self) -> dict[str, str]:
        """HTTP Basic client authentication for ``/oauth/*`` (RFC 6749 section 2.3.1)."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self.secret(), safe='')}"
        return {"authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}

    @staticmethod
    def idempotency_key(method: str, given: str | None) -> str | None:
        """The caller's key, else a fresh UUID4 for a write: one per call, kept across retries."""
        if given is not None:
            return given
        return str(uuid.uuid4()) if method in WRITE_METHODS else None

    def build(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        *,
        token: str | None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        form: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        login_secret: str | None = None,
        idempotency_key: str | None = None,
        oauth: bool = False,
    ) -> httpx.Request:
        headers = self.headers()
        if not oauth:
            headers.update(self.credential_headers(token))
        elif method == "POST":  # the token endpoints; the .well-known documents are public
            headers.update(self.basic())
        if login_secret is not None:
            headers["login-secret"] = login_secret
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        params = {k: _query_value(v) for k, v in _drop_unset(query or {}).items()}
        content: bytes | None = None
        if body is not None:
            if isinstance(body, dict):
                body = _drop_unset(body)
            content = msgspec.json.encode(body)
            headers["content-type"] = "application/json"
        data = {k: str(v) for k, v in _drop_unset(form or {}).items()} if form else None
        request = http.build_request(
            method,
            self.base_url + path,
            params=params or None,
            content=content,
            data=data if oauth or files is not None else None,
            files=dict(files) if files is not None else None,
            headers=headers,
        )
        if self.signer is not None and not oauth:
            # per attempt: bankhub accepts a signature's nonce once
            request.read()
            self.signer.sign(request)
        return request

    @staticmethod
    def read_files(files: Files | None) -> dict[str, tuple[str, bytes]] | None:
        """Files as bytes, so that a retry sends the same content again."""
        if files is None:
            return None
        return {
            name: (filename, content if isinstance(content, bytes) else content.read())
            for name, (filename, content) in files.items()
        }

    # -- answers ----------------------------------------------------------------------------------

    @staticmethod
    def error(response: httpx.Response) -> APIError:
        code, message, extra = f"HTTP{response.status_code}", response.reason_phrase, {}
        try:
            parsed = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            code = parsed["error"]
            text = parsed.get("message", parsed.get("error_description"))
            message = text if isinstance(text, str) else code
            found = parsed.get("extra")
            extra = found if isinstance(found, dict) else {}
        cls = error_class(code, response.status_code)
        return cls(
            code=code,
            message=message,
            extra=extra,
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
            headers=dict(response.headers),
        )

    @staticmethod
    def decode(response: httpx.Response, into: type[T]) -> T:
        if into is bytes:
            return response.content  # type: ignore[return-value]
        try:
            return msgspec.json.decode(response.content, type=into)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ResponseDecodeError(
                f"{response.request.method} {response.request.url.path}: the answer does not "
                f"match {into.__name__}: {exc} (X-Request-Id "
                f"{response.headers.get('x-request-id')})"
            ) from exc

    @staticmethod
    def renews_token(error: APIError) -> bool:
        """A bearer token bankhub refused: renewed once, and the call sent again."""
        return isinstance(error, AuthenticationError) and error.code == "InvalidToken"

    # -- retries ----------------------------------------------------------------------------------

    def delay_after_answer(self, attempt: int, safe: bool, error: APIError) -> float | None:
        if not safe:
            return None
        in_progress = error.code == "IdempotencyKeyInProgress"
        if error.status not in RETRY_STATUSES and not in_progress:
            return None
        after = parse_retry_after(error.headers.get("retry-after"), self.clock)
        return self.retry.delay(attempt, after, self.random)

    def delay_after_failure(self, attempt: int, safe: bool) -> float | None:
        return self.retry.delay(attempt, None, self.random) if safe else None

    @staticmethod
    def connection_error(exc: httpx.TransportError) -> APIConnectionError:
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"bankhub did not answer in time: {exc!r}")
        return APIConnectionError(f"could not reach bankhub: {exc!r}")


def next_page_query(response: httpx.Response) -> dict[str, str] | None:
    """The query of the ``Link: <...>; rel="next"`` page, if any.

    Only the query is taken: the link names bankhub's public URL, which may not be the base URL
    this client was given (a private address, a tunnel)."""
    link = response.links.get("next")
    if link is None or "url" not in link:
        return None
    return dict(parse_qsl(urlsplit(link["url"]).query, keep_blank_values=True))
