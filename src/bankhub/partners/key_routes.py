"""``/v2/keys``: an app manages its own API keys with a master key (S2)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api import request_context
from bankhub.api.openapi import APP_AUTH, APP_SECURITY, E, errors
from bankhub.api.principal import AuthDep, HubDep
from bankhub.api.schemas import VERSION, wire_time
from bankhub.audit import services as audit
from bankhub.errors import DomainError, ErrorCode
from bankhub.partners import keys
from bankhub.partners.models import ApiKey
from bankhub.partners.origins import MAX_FRAME_ORIGINS, parse_frame_origins
from bankhub.security import idempotency, scopes
from bankhub.security.scopes import Scope

AnyRequest = Request[Any, Any, Any]

KeyName = Annotated[str, msgspec.Meta(max_length=200)]
Referer = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Referers = Annotated[list[Referer], msgspec.Meta(max_length=MAX_FRAME_ORIGINS)]
KeyId = Annotated[str, msgspec.Meta(max_length=40)]


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    scope: Scope
    kind: keys.KeyKind = keys.KeyKind.SERVICE
    name: KeyName = ""
    #: origins (``https://host[:port]``, ``https://*.host``) an app key may be used from
    allowed_referers: Referers | None = None


class RollIn(msgspec.Struct, forbid_unknown_fields=True):
    overlap_seconds: Annotated[
        int, msgspec.Meta(ge=0, le=int(keys.MAX_OVERLAP.total_seconds()))
    ] = int(keys.DEFAULT_OVERLAP.total_seconds())


class KeyOut(msgspec.Struct):
    key_id: str
    name: str
    kind: str
    scope: str
    allowed_referers: list[str] | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    live: bool
    replaces: str | None
    #: only in the answer that created the key; never shown again
    secret: str | None = None


class KeyEnvelope(msgspec.Struct):
    data: KeyOut
    version: str = VERSION


class KeyListEnvelope(msgspec.Struct):
    data: list[KeyOut]
    version: str = VERSION


def _out(key: ApiKey, now: datetime, secret: str | None = None) -> KeyOut:
    return KeyOut(
        key_id=key.key_id,
        name=key.name,
        kind=key.kind,
        scope=key.scope,
        allowed_referers=key.allowed_referers,
        created_at=wire_time(key.created_at) or "",
        expires_at=wire_time(key.expires_at),
        revoked_at=wire_time(key.revoked_at),
        live=keys.is_live(key, now),
        replaces=key.replaces,
        secret=secret,
    )


@get(
    "/v2/keys",
    tags=["keys"],
    summary="The app's API keys",
    opt=scopes.master(),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
)
async def list_keys(hub: HubDep, auth: AuthDep, request: AnyRequest) -> KeyListEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        now = hub.clock()
        return KeyListEnvelope([_out(k, now) for k in await keys.list_keys(session, app)])


@post(
    "/v2/keys",
    status_code=200,
    tags=["keys"],
    summary="Create an API key (its secret is shown once)",
    opt=idempotency.shows_secret(scopes.master(), "data", "secret"),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def create_key(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[KeyIn]
) -> KeyEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        now = hub.clock()
        if data.allowed_referers and data.kind is not keys.KeyKind.APP:
            raise DomainError(
                ErrorCode.DATA_INVALID,
                "allowed_referers applies to app keys only",
                {"problems": ["allowed_referers"]},
            )
        issued = keys.issue(
            session,
            hub.hasher,
            now,
            app.id,
            scope=data.scope,
            kind=data.kind,
            name=data.name,
            allowed_referers=parse_frame_origins(
                data.allowed_referers, allow_http=hub.settings.is_dev, field="allowed_referers"
            )
            if data.allowed_referers
            else None,
        )
        await session.flush()
        _audit(session, request, app.id, app.client_id, "key.created", issued.key, now)
        return KeyEnvelope(_out(issued.key, now, issued.secret))


@post(
    "/v2/keys/{key_id:str}/roll",
    status_code=200,
    tags=["keys"],
    summary="Replace a key; the old one keeps working for the overlap",
    opt=idempotency.shows_secret(scopes.master(), "data", "secret"),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.NOT_FOUND, body=True),
)
async def roll_key(
    hub: HubDep, auth: AuthDep, request: AnyRequest, key_id: FromPath[KeyId], data: JSONBody[RollIn]
) -> KeyEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        now = hub.clock()
        old = await keys.get_key(session, app, key_id)
        issued = await keys.roll(
            session, hub.hasher, now, old, timedelta(seconds=data.overlap_seconds)
        )
        _audit(session, request, app.id, app.client_id, "key.rolled", old, now)
        return KeyEnvelope(_out(issued.key, now, issued.secret))


@delete(
    "/v2/keys/{key_id:str}",
    status_code=200,
    tags=["keys"],
    summary="Revoke a key at once",
    opt=scopes.master(),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.NOT_FOUND, write=True),
)
async def revoke_key(
    hub: HubDep, auth: AuthDep, request: AnyRequest, key_id: FromPath[KeyId]
) -> KeyEnvelope:
    async with hub.db.transaction() as session:
        principal = await auth.principal(session)
        app, now = principal.app, hub.clock()
        key = await keys.get_key(session, app, key_id)
        if key.key_id == principal.key_id:
            others = [k for k in await keys.live_masters(session, app, now) if k.id != key.id]
            if not others:
                raise DomainError(
                    ErrorCode.DATA_INVALID,
                    "This is the app's last live master key; create another before revoking it",
                    {"problems": ["key_id"]},
                )
        await keys.revoke(session, now, key)
        _audit(session, request, app.id, app.client_id, "key.revoked", key, now)
        return KeyEnvelope(_out(key, now))


def _audit(
    session: AsyncSession,
    request: AnyRequest,
    app_id: int,
    client_id: str,
    action: str,
    key: ApiKey,
    now: datetime,
) -> None:
    audit.record(
        session,
        now=now,
        actor=f"app:{client_id}",
        action=action,
        target_type="api_key",
        target_id=key.key_id,
        app_id=app_id,
        # the master credential that did it (never a secret)
        detail={
            "scope": key.scope,
            "kind": key.kind,
            "by": audit.credential(request_context.of(request).caller),
        },
        request_id=audit.request_id(),
    )


KEY_ROUTES: list[ControllerRouterHandler] = [list_keys, create_key, roll_key, revoke_key]
