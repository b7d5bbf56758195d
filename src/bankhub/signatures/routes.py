"""``/v2/signature/key``: an app manages the public keys its requests are signed with, with a
master key (docs/signatures.md)."""

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
from bankhub.security import scopes
from bankhub.signatures import services
from bankhub.signatures.guard import SignatureGuard
from bankhub.signatures.schemas import (
    SignatureKeyEnvelope,
    SignatureKeyIn,
    SignatureKeyListEnvelope,
    out,
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


SIGNATURE_ROUTES: list[ControllerRouterHandler] = [
    list_signature_keys,
    add_signature_key,
    revoke_signature_key,
]
