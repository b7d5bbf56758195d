"""``/oauth/token``, ``/oauth/revoke``, ``/oauth/introspect`` and the JWKS (RFC 6749, 7009, 7662).

These endpoints speak OAuth's own wire format (form bodies in, ``{"error": ...}`` out) so that
any OAuth2 client library works with them; everything under ``/v2`` keeps the seed's envelope.
The edge's refusals (``AddressNotAllowed``, ``RateLimited``, ``AddressBlocked``) are the same
here as on the API, in the envelope, whose ``error`` member such libraries read as well. The
client authenticates first (:meth:`bankhub.hub.Hub.oauth_client`), behind the app's allow-list
and rate limits; its failures count towards the address block like the API's.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

from litestar import MediaType, Request, Response, get, post
from litestar.types import ControllerRouterHandler

from bankhub.api import request_context
from bankhub.api.principal import AuthDep, HubDep, hub_of, public_url
from bankhub.audit import services as audit
from bankhub.oauth.service import OAuthError
from bankhub.security import network, ratelimit, scopes

AnyRequest = Request[Any, Any, Any]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FIELD_LIMIT = 4096


#: refusals that are a failed authentication (audited, coalesced)
_FAILED_AUTH = frozenset({"invalid_client", "invalid_grant"})


def _error(exc: OAuthError, request: AnyRequest, client_id: str | None = None) -> Response[Any]:
    request_context.of(request).error_code = exc.error  # for the request log
    if exc.error in _FAILED_AUTH:
        hub = hub_of(request)
        audit.auth_failure(
            hub.audit,
            address=str(network.client_ip(request.scope, hub.settings.trusted_networks)),
            reason=f"oauth:{exc.error}",
            path=request.url.path,
            client_id=client_id,
            # invalid_grant comes after the client authenticated; invalid_client names no app
            known_app=exc.error == "invalid_grant",
        )
        network.note_failure(request.scope)  # S18: towards the address block
    refused = ratelimit.refusal(request.scope)
    if refused is not None:  # S33: the client is not verified and its address is over its limit
        raise refused
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="bankhub"'
    return Response(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers=headers,
        media_type=MediaType.JSON,
    )


async def _form(request: AnyRequest) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded")
    form = await request.form()
    values: dict[str, str] = {}
    for name in form:
        items = form.getall(name)
        if len(items) != 1 or not isinstance(items[0], str) or len(items[0]) > _FIELD_LIMIT:
            raise OAuthError("invalid_request", f"{name[:40]} must be given once, as text")
        values[name] = items[0]
    return values


def _client(request: AnyRequest, form: dict[str, str]) -> tuple[str | None, str | None]:
    """client_secret_basic (the Authorization header) or client_secret_post (the body)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "Use HTTP Basic client authentication", 401)
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Malformed Basic credentials", 401) from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "Malformed Basic credentials", 401)
        if "client_secret" in form:
            raise OAuthError("invalid_request", "Use one client authentication method")
        return unquote_plus(client_id), unquote_plus(secret)
    return form.get("client_id"), form.get("client_secret")


@post(
    "/oauth/token",
    status_code=200,
    tags=["oauth"],
    summary="Obtain an access token",
    opt=scopes.public(),
    include_in_schema=False,
)
async def token(hub: HubDep, auth: AuthDep, request: AnyRequest) -> Response[Any]:
    client_id: str | None = None
    try:
        form = await _form(request)
        client_id, secret = _client(request, form)
        grant = form.get("grant_type")
        if grant is None:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant not in ("client_credentials", "refresh_token"):
            raise OAuthError(
                "unsupported_grant_type",
                "Only client_credentials and refresh_token are supported",
            )
        async with hub.db.transaction() as session:
            app, key = await auth.oauth_client(session, client_id, secret)
            if grant == "client_credentials":
                issued = await hub.tokens.client_credentials(session, app, key, form.get("scope"))
            else:
                issued = await hub.tokens.refresh(
                    session, app, form.get("refresh_token"), form.get("scope")
                )
    except OAuthError as exc:
        return _error(exc, request, client_id)
    return Response(issued.body(), headers=NO_STORE, media_type=MediaType.JSON)


@post(
    "/oauth/revoke",
    status_code=200,
    tags=["oauth"],
    summary="Revoke a token (RFC 7009)",
    opt=scopes.public(),
    include_in_schema=False,
)
async def revoke(hub: HubDep, auth: AuthDep, request: AnyRequest) -> Response[Any]:
    client_id: str | None = None
    try:
        form = await _form(request)
        client_id, secret = _client(request, form)
        async with hub.db.transaction() as session:
            app, key = await auth.oauth_client(session, client_id, secret)
            await hub.tokens.revoke(session, app, key, form.get("token", ""))
    except OAuthError as exc:
        return _error(exc, request, client_id)
    return Response(b"", status_code=200, headers=NO_STORE)


@post(
    "/oauth/introspect",
    status_code=200,
    tags=["oauth"],
    summary="Is this token active? (RFC 7662)",
    opt=scopes.public(),
    include_in_schema=False,
)
async def introspect(hub: HubDep, auth: AuthDep, request: AnyRequest) -> Response[Any]:
    client_id: str | None = None
    try:
        form = await _form(request)
        client_id, secret = _client(request, form)
        async with hub.db.transaction() as session:
            app, key = await auth.oauth_client(session, client_id, secret)
            answer = await hub.tokens.introspect(session, app, key, form.get("token", ""))
    except OAuthError as exc:
        return _error(exc, request, client_id)
    return Response(answer, headers=NO_STORE, media_type=MediaType.JSON)


@get(
    "/.well-known/jwks.json",
    tags=["oauth"],
    summary="The public keys access tokens are signed with",
    opt=scopes.public(),
    include_in_schema=False,
)
async def jwks(hub: HubDep, request: AnyRequest) -> Response[Any]:
    keys = await hub.tokens.jwks()
    return Response(
        keys, headers={"Cache-Control": "public, max-age=300"}, media_type=MediaType.JSON
    )


@get(
    "/.well-known/oauth-authorization-server",
    tags=["oauth"],
    summary="Authorization server metadata (RFC 8414)",
    opt=scopes.public(),
    include_in_schema=False,
)
async def metadata(hub: HubDep, request: AnyRequest) -> dict[str, Any]:
    base = public_url(hub, request)
    return {
        "issuer": hub.tokens.issuer,
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["read", "write", "master"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
    }


OAUTH_ROUTES: list[ControllerRouterHandler] = [token, revoke, introspect, jwks, metadata]
