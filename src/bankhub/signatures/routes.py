"""``/v2/signature/key`` and ``/v2/signature/source``: an app manages the public keys its
requests are signed with, and the URLs they are synced from, with a master key
(docs/signatures.md)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.types import ControllerRouterHandler

from bankhub.api import request_context
from bankhub.api.openapi import APP_AUTH, APP_SECURITY, E, errors
from bankhub.api.principal import AuthDep, HubDep
from bankhub.audit import services as audit
from bankhub.config import Settings
from bankhub.security import scopes
from bankhub.signatures import services, sync
from bankhub.signatures.guard import SignatureGuard
from bankhub.signatures.models import SignatureKeySource
from bankhub.signatures.schemas import (
    SignatureKeyEnvelope,
    SignatureKeyIn,
    SignatureKeyListEnvelope,
    SignatureSourceEnvelope,
    SignatureSourceIn,
    SignatureSourceListEnvelope,
    SignatureSourceOut,
    out,
    source_out,
)

AnyRequest = Request[Any, Any, Any]
KeyId = Annotated[str, msgspec.Meta(max_length=40)]


def _guard(request: AnyRequest) -> services.KeyCache | None:
    guard = request.app.state.get("signatures")
    return guard.cache if isinstance(guard, SignatureGuard) else None


@get(
    "/v2/signature/key",
    tags=["signatures"],
    summary="The app's signature keys, revoked ones included",
    opt=scopes.master(),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
)
async def list_signature_keys(hub: HubDep, auth: AuthDep) -> SignatureKeyListEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        return SignatureKeyListEnvelope([out(k) for k in await services.list_keys(session, app.id)])


@post(
    "/v2/signature/key",
    status_code=200,
    tags=["signatures"],
    summary="Register a public key that signs the app's requests (RFC 9421)",
    opt=scopes.master(),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def add_signature_key(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[SignatureKeyIn]
) -> SignatureKeyEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        key = await services.add_key(
            session,
            app.id,
            public_key=data.public_key,
            label=data.label,
            algorithm=data.algorithm,
            required=data.required,
            now=hub.clock(),
            actor=f"app:{app.client_id}",
            by=audit.credential(request_context.of(request).caller),
            cache=_guard(request),
        )
        return SignatureKeyEnvelope(out(key))


@delete(
    "/v2/signature/key/{key_id:str}",
    status_code=200,
    tags=["signatures"],
    summary="Revoke a signature key at once",
    opt=scopes.master(),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.NOT_FOUND, write=True),
)
async def revoke_signature_key(
    hub: HubDep, auth: AuthDep, request: AnyRequest, key_id: FromPath[KeyId]
) -> SignatureKeyEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        key = await services.revoke_key(
            session,
            app.id,
            key_id,
            now=hub.clock(),
            actor=f"app:{app.client_id}",
            by=audit.credential(request_context.of(request).caller),
        )
        return SignatureKeyEnvelope(out(key))


def _source_out(
    settings: Settings, source: SignatureKeySource, counts: dict[str, int]
) -> SignatureSourceOut:
    grace = settings.signature_sync_grace
    return source_out(
        source, counts.get(source.public_id, 0), sync.state(source), sync.grace_until(source, grace)
    )


@get(
    "/v2/signature/source",
    tags=["signatures"],
    summary="The URLs the app's signature keys are synced from, with each one's state",
    opt=scopes.master(),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
)
async def list_signature_sources(hub: HubDep, auth: AuthDep) -> SignatureSourceListEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        counts = await sync.key_counts(session, app.id)
        return SignatureSourceListEnvelope(
            [_source_out(hub.settings, s, counts) for s in await sync.list_sources(session, app.id)]
        )


@post(
    "/v2/signature/source",
    status_code=200,
    tags=["signatures"],
    summary="Sync the app's signature keys from a URL (OpenSSH lines or a JWKS); synced at once",
    description=(
        "Names an https URL that serves the app's public keys as OpenSSH `authorized_keys` "
        "lines (what `https://github.com/USER.keys` serves) or as a JWKS; at most 3 per app. "
        "It is fetched now and then every `BANKHUB_SIGNATURE_SYNC_SECONDS` (with "
        "`If-None-Match`): its keys are added with the source's `required` choice, keys gone "
        "from it are revoked, an empty answer revokes them all. A failing source keeps the "
        "keys of its last good sync until `grace_until`, then they are revoked until a good "
        "sync. The answer is the source's state after the first fetch; the keys are listed by "
        "`GET /v2/signature/key` with `source: synced:<url>` and `source_id`."
    ),
    opt=scopes.master(),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def add_signature_source(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[SignatureSourceIn]
) -> SignatureSourceEnvelope:
    fetcher = sync.fetcher_for(hub.settings, hub.http)
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        source = await sync.add_source(
            session,
            app.id,
            url=data.url,
            required=data.required,
            fetcher=fetcher,
            now=hub.clock(),
            actor=f"app:{app.client_id}",
            by=audit.credential(request_context.of(request).caller),
        )
        app_id, row_id, public_id = app.id, source.id, source.public_id
    # the first sync, once the source is stored: its outcome is the answer's state
    await sync.sync_source(
        hub.db, hub.clock, fetcher, row_id, grace=hub.settings.signature_sync_grace
    )
    cache = _guard(request)
    if cache is not None:
        cache.forget(app_id)
    async with hub.db.transaction() as session:
        source = await sync.get_source(session, app_id, public_id)
        counts = await sync.key_counts(session, app_id)
        return SignatureSourceEnvelope(_source_out(hub.settings, source, counts))


@delete(
    "/v2/signature/source/{source_id:str}",
    status_code=200,
    tags=["signatures"],
    summary="Stop syncing from a URL; the keys it brought are revoked at once",
    opt=scopes.master(),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.NOT_FOUND, write=True),
)
async def remove_signature_source(
    hub: HubDep, auth: AuthDep, request: AnyRequest, source_id: FromPath[KeyId]
) -> SignatureSourceEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        counts = await sync.key_counts(session, app.id)
        source = await sync.remove_source(
            session,
            app.id,
            source_id,
            now=hub.clock(),
            actor=f"app:{app.client_id}",
            by=audit.credential(request_context.of(request).caller),
        )
        return SignatureSourceEnvelope(
            _source_out(hub.settings, source, {**counts, source.public_id: 0})
        )


SIGNATURE_ROUTES: list[ControllerRouterHandler] = [
    list_signature_keys,
    add_signature_key,
    revoke_signature_key,
    list_signature_sources,
    add_signature_source,
    remove_signature_source,
]
