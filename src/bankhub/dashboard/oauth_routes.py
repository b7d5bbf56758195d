"""OAuth clients: how an app uses bankhub's OAuth 2.0 token endpoint, and its grants.

An app's OAuth client is its client-id with one of its live ``service`` keys as the secret
(``client_credentials``). Each grant is a token family (``bankhub.oauth``): the page lists them
with the key they were made with, and ending one (behind re-authentication, S7) stops its
refresh token and every access token from it at once, after a confirmation that says so.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody

from bankhub.api.principal import HubDep, public_url
from bankhub.audit import services as audit
from bankhub.dashboard import roles, services
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import Refused, confirm_page, confirmed, go, page, visit_of
from bankhub.dashboard.roles import Action
from bankhub.oauth import service as oauth
from bankhub.oauth.models import TokenFamily
from bankhub.partners import keys

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]


def _path(client_id: str) -> str:
    return f"{APPS}/{client_id}/oauth"


@get(f"{APPS}/{{client_id:str}}/oauth", opt=roles.route(Action.VIEW), include_in_schema=False)
async def oauth_page(hub: HubDep, request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    now = hub.clock()
    base = public_url(hub, request)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        grants = await oauth.grants_of(db, app.id)
        clients = [
            k
            for k in await keys.list_keys(db, app)
            if k.kind == keys.KeyKind.SERVICE.value and keys.is_live(k, now)
        ]
    done = request.query_params.get("done")
    return page(
        request,
        "oauth.html",
        app=app,
        endpoints=[
            ("Issuer", hub.tokens.issuer),
            ("Token endpoint", f"{base}/oauth/token"),
            ("Revocation endpoint", f"{base}/oauth/revoke"),
            ("Introspection endpoint", f"{base}/oauth/introspect"),
            ("JWKS URL", f"{base}/.well-known/jwks.json"),
            ("Metadata", f"{base}/.well-known/oauth-authorization-server"),
        ],
        clients=clients,
        active=[g for g in grants if g.live(now)],
        ended=[g for g in grants if not g.live(now)][:20],
        done="The grant was revoked: its tokens are refused from now on." if done else None,
    )


def _grant_confirmation(request: AnyRequest, client_id: str, family: TokenFamily) -> Response[Any]:
    return confirm_page(
        request,
        title=f"Revoke grant {family.id}?",
        consequences=[
            f"The grant's refresh token and every access token from it ({family.scope} scope, "
            f"made with {family.key_id}) are refused from the next request on (InvalidToken).",
            "The app's servers must ask the token endpoint for a new grant; the key stays live.",
        ],
        action=f"{_path(client_id)}/{family.id}/revoke",
        button="Revoke grant",
        back=_path(client_id),
    )


async def _family(hub: Any, client_id: str, family_id: str) -> TokenFamily:
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        family: TokenFamily | None = await db.get(TokenFamily, family_id[:40])
        if family is None or family.app_id != app.id:
            raise Refused(404, "No such grant.")
        return family


@get(
    f"{APPS}/{{client_id:str}}/oauth/{{family_id:str}}/revoke",
    opt=roles.route(Action.VIEW),
    include_in_schema=False,
)
async def revoke_grant_page(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], family_id: FromPath[str]
) -> Response[Any]:
    if not visit_of(request).can(Action.OAUTH_REVOKE.value):
        raise Refused(403, "Your role does not allow this.")
    family = await _family(hub, client_id, family_id)
    return _grant_confirmation(request, client_id, family)


@post(
    f"{APPS}/{{client_id:str}}/oauth/{{family_id:str}}/revoke",
    opt=roles.route(Action.OAUTH_REVOKE),
    include_in_schema=False,
)
async def revoke_grant(
    hub: HubDep,
    request: AnyRequest,
    client_id: FromPath[str],
    family_id: FromPath[str],
    data: Form,
) -> Response[Any]:
    member = visit_of(request).member
    if member is None:
        raise Refused(401, "Please sign in.")
    if not confirmed(data):
        return _grant_confirmation(request, client_id, await _family(hub, client_id, family_id))
    now = hub.clock()
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        family = await oauth.revoke_family(db, app.id, family_id, now, "revoked_by_member")
        if family is None:
            raise Refused(404, "No such grant.")
        audit.record(
            db,
            now=now,
            actor=services.member_actor(member),
            action="oauth.grant_revoked",
            target_type="oauth_token_family",
            target_id=family.id,
            app_id=app.id,
            detail={"key_id": family.key_id, "scope": family.scope},
            request_id=audit.request_id(),
        )
    return go(request, f"{_path(client_id)}?done=revoked")


OAUTH_ROUTES = [oauth_page, revoke_grant_page, revoke_grant]
