"""S40 at the edge: the middleware that honours ``Idempotency-Key``, and its description.

What a key is, how answers are stored and for how long: ``bankhub.security.idempotency``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Parameter,
    PathItem,
    Reference,
    Schema,
)
from litestar.routes import BaseRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from bankhub.api import json_bodies
from bankhub.api.auth import Auth
from bankhub.errors import DomainError
from bankhub.hub import Hub
from bankhub.security import idempotency as store
from bankhub.security.idempotency import (
    DONE,
    FINGERPRINT,
    KEY_HEADER,
    KEY_PATTERN,
    MAX_STORED_BODY,
    REPLAYED_HEADER,
    SHOWN_ONCE,
    STORED_HEADERS,
    TRANSIENT,
    Claim,
    KeyedRequest,
    StoredResponse,
    covered_operations,
    covers,
    parse_key,
    secret_path,
    without_secret,
)

log = logging.getLogger("bankhub.idempotency")


def _piece(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def canonical_body(body: bytes, content_type: str) -> tuple[str, bytes]:
    """The media type and the body as it is compared: JSON with sorted keys and no spacing (as
    sent when it is not JSON or nested too deep, which the route refuses); a multipart upload
    without its boundary (a client library picks a new one on each retry)."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media == "application/json" and not json_bodies.depth_exceeds(body):
        try:
            return media, msgspec.json.encode(msgspec.json.decode(body), order="sorted")
        except (msgspec.DecodeError, msgspec.EncodeError):
            return media, body
    if media == "multipart/form-data":
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.lower() == "boundary" and value.strip('"'):
                return media, body.replace(b"--" + value.strip('"').encode("latin-1"), b"--")
    return media, body


# --- the middleware -----------------------------------------------------------------------------


def _storable(status: int) -> bool:
    return status < 500 and status not in TRANSIENT


@dataclass
class _Buffered:
    """The handler's answer, held back until it is stored."""

    messages: list[Message] = field(default_factory=list)
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    #: something beyond a plain status line and body was sent (never stored)
    unusual: bool = False

    async def send(self, message: Message) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            for name, value in message.get("headers", []):
                text = bytes(name).decode("latin-1").lower()
                if text in STORED_HEADERS:
                    self.headers.append((text, bytes(value).decode("latin-1")))
        elif message["type"] == "http.response.body":
            if len(self.body) <= MAX_STORED_BODY:
                self.body.extend(message.get("body", b""))
        else:
            self.unusual = True

    def response(self) -> StoredResponse | None:
        if self.status is None or self.unusual or len(self.body) > MAX_STORED_BODY:
            return None
        return StoredResponse(self.status, self.headers, bytes(self.body))


async def replay(stored: StoredResponse, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
    headers.append((b"content-length", str(len(stored.body)).encode()))
    headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})


class IdempotencyMiddleware:
    """Honours ``Idempotency-Key`` on the routes :func:`covers` names (innermost middleware)."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not covers(
            scope.get("route_handler"), str(scope.get("method", ""))
        ):
            await self.app(scope, receive, send)
            return
        name = KEY_HEADER.lower().encode()
        values = [bytes(v) for k, v in scope.get("headers", []) if bytes(k).lower() == name]
        if not values:
            await self.app(scope, receive, send)
            return
        key = parse_key(values)
        hub = self.hub
        await hub.ready()
        # The body is read (and size-limited) here and kept in the scope for the handler.
        request: Request[Any, Any, Any] = Request(scope, receive, send)
        app_id = await self._caller(request)
        if app_id is None:  # refused credentials: the route answers, nothing is stored
            await self.app(scope, receive, send)
            return
        keyed = KeyedRequest(
            app_id, key, request.method, scope["path"], await self._fingerprint(request)
        )
        lease = timedelta(seconds=hub.settings.idempotency_lease_seconds)
        # the store's functions go through their module: one seam, where tests stand in for a
        # process that dies before it gives its key back
        outcome = await store.claim(hub.db, hub.keyring, keyed, hub.clock(), lease)
        if isinstance(outcome, StoredResponse):
            await replay(outcome, send)
            return
        await self._run(
            scope, receive, send, app_id, outcome, secret_path(scope.get("route_handler"))
        )

    async def _caller(self, request: Request[Any, Any, Any]) -> int | None:
        async with self.hub.db.transaction() as session:
            try:
                principal = await Auth(self.hub, request).principal(session)
            except DomainError:
                return None
            return principal.app.id

    async def _fingerprint(self, request: Request[Any, Any, Any]) -> str:
        body = await request.body()
        media, canonical = canonical_body(body, request.headers.get("content-type", ""))
        login_secret = request.headers.get("login-secret")
        digest = hashlib.sha256()
        for part in (
            request.method.encode(),
            request.scope["path"].encode("utf-8", "surrogateescape"),
            bytes(request.scope.get("query_string", b"")),
            media.encode("latin-1", "replace"),
            b"-" if login_secret is None else b"+" + login_secret.encode("latin-1", "replace"),
            canonical,
        ):
            digest.update(_piece(part))
        return self.hub.hasher.hash(digest.hexdigest(), purpose=FINGERPRINT)

    async def _run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        app_id: int,
        held: Claim,
        secret_at: tuple[str, ...] | None,
    ) -> None:
        buffered = _Buffered()
        try:
            await self.app(scope, receive, buffered.send)
        except BaseException:
            await self._release(held)
            raise
        response = buffered.response()
        state = DONE
        if response is not None and secret_at is not None:
            stripped = without_secret(response, secret_at)
            if stripped is not None:
                response, state = stripped, SHOWN_ONCE
        if response is not None and _storable(response.status):
            try:
                stored = await store.complete(
                    self.hub.db, self.hub.keyring, app_id, held, response, state=state
                )
                if not stored:
                    log.warning("idempotency claim of app %s was lost before storing", app_id)
            except Exception:
                log.exception("storing the answer of an idempotent request failed")
                await self._release(held)
        else:
            await self._release(held)
        for message in buffered.messages:
            await send(message)

    async def _release(self, held: Claim) -> None:
        try:
            await store.release(self.hub.db, held)
        except Exception:  # the lease ends anyway; the key is free then
            log.exception("releasing an idempotency key failed")


def middleware(hub: Hub) -> Any:
    def wrap(app: ASGIApp) -> ASGIApp:
        return IdempotencyMiddleware(app, hub)

    return wrap


# --- the description ----------------------------------------------------------------------------

_ERROR_BODY = Reference(ref="#/components/schemas/ErrorBody")
_PARAMETER = Parameter(
    name=KEY_HEADER,
    param_in="header",
    required=False,
    description=(
        "Makes the request safe to send again: the first answer (2xx or 4xx) is stored for "
        "24 hours and replayed, with `Idempotent-Replayed: true`, to the same request with the "
        "same key; the key with a different request is `IdempotencyKeyReused` (422), while the "
        "first request runs `IdempotencyKeyInProgress` (409). Keys belong to the app."
    ),
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern=KEY_PATTERN),
)
_REPLAYED = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
    required=False,
    description="Sent when this answer is the stored answer to an earlier request with the "
    "same Idempotency-Key",
)


def _error(
    description: str, headers: dict[str, OpenAPIHeader | Reference] | None = None
) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={"application/json": OpenAPIMediaType(schema=_ERROR_BODY)},
        headers=headers,
    )


def describe(spec: OpenAPI, routes: Iterable[BaseRoute]) -> OpenAPI:
    """Adds the header, the replay marker and the 409 and 422 answers to every operation that
    honours ``Idempotency-Key``. Idempotent, like :func:`bankhub.api.openapi.finish`."""
    paths = spec.paths or {}
    for method, path in covered_operations(routes):
        item = paths.get(path)
        operation = getattr(item, method.lower(), None) if isinstance(item, PathItem) else None
        if operation is None:
            continue  # not in the description
        parameters = list(operation.parameters or [])
        if not any(isinstance(p, Parameter) and p.name == KEY_HEADER for p in parameters):
            parameters.append(_PARAMETER)
        operation.parameters = parameters
        responses = dict(operation.responses or {})
        for status, response in responses.items():
            if isinstance(response, OpenAPIResponse) and int(status) < 500:
                response.headers = {**(response.headers or {}), REPLAYED_HEADER: _REPLAYED}
        responses.setdefault(
            "409",
            _error(
                "The error envelope (`error`, `message`, `extra`); `error` is "
                "`IdempotencyKeyInProgress`: a request with this Idempotency-Key is still running",
                {
                    "Retry-After": OpenAPIHeader(
                        schema=Schema(type=OpenAPIType.STRING),
                        required=True,
                        description="Seconds to wait before sending the request again",
                    )
                },
            ),
        )
        responses.setdefault(
            "422",
            _error(
                "The error envelope (`error`, `message`, `extra`); `error` is "
                "`IdempotencyKeyReused`: this Idempotency-Key was used with a different "
                "request, its stored answer was erased, or its answer issued a secret, which "
                "is shown once "
                "(`extra.reason`: `different_request`, `erased`, `secret_shown_once`)"
            ),
        )
        operation.responses = dict(sorted(responses.items()))
    return spec
