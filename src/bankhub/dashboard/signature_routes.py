"""The Signatures page of an app: the public keys its API requests are signed with (RFC 9421,
docs/signatures.md), and the URLs they are synced from, each with its state. Listing is for
every member; adding and revoking keys, adding and removing sources and syncing one now are for
the roles that manage API keys, after a recent re-authentication (S7), through the same services
as the API and the CLI; every change is audited with the member's name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody

from bankhub.api.principal import HubDep, hub_of
from bankhub.config import Settings
from bankhub.dashboard import roles
from bankhub.dashboard import services as team
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import Refused, field_of, go, member_of, page
from bankhub.dashboard.roles import Action
from bankhub.errors import DomainError
from bankhub.sftp import pinning
from bankhub.signatures import services, sync
from bankhub.signatures.guard import SignatureGuard
from bankhub.signatures.models import SignatureKeySource
from bankhub.signatures.services import KeyCache

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]
DONE = {
    "added": "The key was added.",
    "revoked": "The key was revoked; it no longer signs.",
    "reauth": "Thank you. You can make the change now.",
    "source-added": "The key source was added and synced; its state is below.",
    "source-removed": "The key source was removed; the keys it brought are revoked.",
    "synced": "The key source was synced; its state is below.",
}


@dataclass(frozen=True, slots=True)
class SourceView:
    source: SignatureKeySource
    state: str
    keys: int
    grace_until: datetime | None


def _cache(request: AnyRequest) -> KeyCache | None:
    guard = request.app.state.get("signatures")
    return guard.cache if isinstance(guard, SignatureGuard) else None


@dataclass(frozen=True, slots=True)
class SftpDrop:
    host: str
    port: int
    fingerprint: str | None


def _sftp_drop(settings: Settings) -> SftpDrop | None:
    """Where the app drops statement files and the host key to pin (docs/sftp.md); None while
    the drop is off."""
    if settings.sftp_port is None:
        return None
    host = urlsplit(settings.public_url).hostname if settings.public_url else None
    return SftpDrop(
        host or settings.sftp_host,
        settings.sftp_port,
        pinning.published_fingerprint(settings.data_dir),
    )


def _page_path(client_id: str) -> str:
    return f"{APPS}/{client_id}/signatures"


async def _signatures_page(
    request: AnyRequest, client_id: str, *, notice: str | None = None
) -> Response[Any]:
    hub = hub_of(request)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        keys = await services.list_keys(db, app.id)
        sources = await sync.list_sources(db, app.id)
        counts = await sync.key_counts(db, app.id)
    grace = hub.settings.signature_sync_grace
    return page(
        request,
        "signatures.html",
        app=app,
        keys=keys,
        sources=[
            SourceView(s, sync.state(s), counts.get(s.public_id, 0), sync.grace_until(s, grace))
            for s in sources
        ],
        failing=[s for s in sources if sync.state(s) in (sync.FAILING, sync.EXPIRED)],
        sftp=_sftp_drop(hub.settings),
        notice=notice,
        done=DONE.get(request.query_params.get("done", "")),
    )


@get(f"{APPS}/{{client_id:str}}/signatures", opt=roles.route(Action.VIEW), include_in_schema=False)
async def signatures_page(request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    return await _signatures_page(request, client_id)


@post(
    f"{APPS}/{{client_id:str}}/signatures",
    opt=roles.route(Action.KEYS_MANAGE),
    include_in_schema=False,
)
async def add_signature_key(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    guard = request.app.state.get("signatures")
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            await services.add_key(
                db,
                app.id,
                public_key=str(data.get("public_key", ""))[:16_384],
                label=field_of(data, "label")[:100] or None,
                algorithm=field_of(data, "algorithm") or None,
                required=data.get("required") == "on",
                now=hub.clock(),
                actor=team.member_actor(member_of(request)),
                cache=guard.cache if isinstance(guard, SignatureGuard) else None,
            )
    except DomainError as exc:
        return await _signatures_page(request, client_id, notice=exc.message)
    return go(request, f"{_page_path(client_id)}?done=added")


@post(
    f"{APPS}/{{client_id:str}}/signatures/{{signature_key_id:str}}/revoke",
    opt=roles.route(Action.KEYS_MANAGE),
    include_in_schema=False,
)
async def revoke_signature_key(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], signature_key_id: FromPath[str]
) -> Response[Any]:
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            try:
                # S13: another app's key, like a missing one, is a 404 (as for API keys)
                await services.get_key(db, app.id, signature_key_id[:40])
            except DomainError:
                raise Refused(404, "No such signature key.") from None
            await services.revoke_key(
                db,
                app.id,
                signature_key_id[:40],
                now=hub.clock(),
                actor=team.member_actor(member_of(request)),
            )
    except DomainError as exc:
        return await _signatures_page(request, client_id, notice=exc.message)
    return go(request, f"{_page_path(client_id)}?done=revoked")


@post(
    f"{APPS}/{{client_id:str}}/signatures/sources",
    opt=roles.route(Action.KEYS_MANAGE),
    include_in_schema=False,
)
async def add_signature_source(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    fetcher = sync.fetcher_for(hub.settings, hub.http)
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            source = await sync.add_source(
                db,
                app.id,
                url=field_of(data, "url")[: sync.MAX_URL + 1],
                required=data.get("required") == "on",
                fetcher=fetcher,
                now=hub.clock(),
                actor=team.member_actor(member_of(request)),
            )
            app_id, row_id = app.id, source.id
    except DomainError as exc:
        return await _signatures_page(request, client_id, notice=exc.message)
    await sync.sync_source(
        hub.db, hub.clock, fetcher, row_id, grace=hub.settings.signature_sync_grace
    )
    if (cache := _cache(request)) is not None:
        cache.forget(app_id)
    return go(request, f"{_page_path(client_id)}?done=source-added")


async def _source_of(request: AnyRequest, client_id: str, source_id: str) -> tuple[int, int]:
    """The app's and the source's row ids; another app's source, like a missing one, is a 404
    (S13)."""
    async with hub_of(request).db.transaction() as db:
        app = await app_of(db, client_id)
        try:
            source = await sync.get_source(db, app.id, source_id[:40])
        except DomainError:
            raise Refused(404, "No such key source.") from None
        return app.id, source.id


@post(
    f"{APPS}/{{client_id:str}}/signatures/sources/{{signature_source_id:str}}/sync",
    opt=roles.route(Action.KEYS_MANAGE),
    include_in_schema=False,
)
async def sync_signature_source(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], signature_source_id: FromPath[str]
) -> Response[Any]:
    app_id, row_id = await _source_of(request, client_id, signature_source_id)
    await sync.sync_source(
        hub.db,
        hub.clock,
        sync.fetcher_for(hub.settings, hub.http),
        row_id,
        grace=hub.settings.signature_sync_grace,
    )
    if (cache := _cache(request)) is not None:
        cache.forget(app_id)
    return go(request, f"{_page_path(client_id)}?done=synced")


@post(
    f"{APPS}/{{client_id:str}}/signatures/sources/{{signature_source_id:str}}/remove",
    opt=roles.route(Action.KEYS_MANAGE),
    include_in_schema=False,
)
async def remove_signature_source(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], signature_source_id: FromPath[str]
) -> Response[Any]:
    app_id, _row = await _source_of(request, client_id, signature_source_id)
    async with hub.db.transaction() as db:
        await sync.remove_source(
            db,
            app_id,
            signature_source_id[:40],
            now=hub.clock(),
            actor=team.member_actor(member_of(request)),
        )
    return go(request, f"{_page_path(client_id)}?done=source-removed")


SIGNATURE_ROUTES = [
    signatures_page,
    add_signature_key,
    revoke_signature_key,
    add_signature_source,
    sync_signature_source,
    remove_signature_source,
]
