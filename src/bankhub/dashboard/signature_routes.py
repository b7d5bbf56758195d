"""The Signatures page of an app: the public keys its API requests are signed with (RFC 9421,
docs/signatures.md). Listing is for every member; adding and revoking are for the roles that
manage API keys, after a recent re-authentication (S7), through the same services as the API
and the CLI; every change is audited with the member's name."""

from __future__ import annotations

from dataclasses import dataclass
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
from bankhub.signatures import services
from bankhub.signatures.guard import SignatureGuard

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]
DONE = {
    "added": "The key was added.",
    "revoked": "The key was revoked; it no longer signs.",
    "reauth": "Thank you. You can make the change now.",
}


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
    return page(
        request,
        "signatures.html",
        app=app,
        keys=keys,
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


SIGNATURE_ROUTES = [signatures_page, add_signature_key, revoke_signature_key]
