"""App Templates: the connect page's branding per app, edited and previewed by members.

The form is multipart (it may carry a logo). Every value is checked by
``bankhub.partners.branding`` before anything is stored; a refused value leaves the stored
template as it was. The preview on the page uses the very stylesheet and logo URLs the connect
page uses, so what a member sees is what end users get. Every change is audited.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath

from bankhub.api.principal import HubDep, hub_of
from bankhub.audit import services as audit
from bankhub.dashboard import roles, services
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import MAX_FIELD, Refused, go, page, visit_of
from bankhub.dashboard.roles import Action
from bankhub.partners import branding

AnyRequest = Request[Any, Any, Any]

FIELDS = branding.FIELDS


def _path(client_id: str) -> str:
    return f"{APPS}/{client_id}/template"


async def _template_page(
    request: AnyRequest,
    client_id: str,
    *,
    notice: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    hub = hub_of(request)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        row = await branding.template_of(db, app.id)
    brand = branding.brand_of(app, row)
    values = {name: (getattr(row, name) or "") if row else "" for name in FIELDS}
    values.update(typed or {})
    return page(
        request,
        "template.html",
        app=app,
        brand=brand,
        values=values,
        limits={
            "name": branding.MAX_NAME,
            "welcome": branding.MAX_WELCOME,
            "footer": branding.MAX_FOOTER,
            "privacy_url": branding.MAX_PRIVACY_URL,
            "data_notice": branding.MAX_DATA_NOTICE,
            "logo_kb": branding.MAX_LOGO_BYTES // 1024,
            "side": branding.MAX_LOGO_SIDE,
        },
        updated=(row.updated_by, row.updated_at) if row else None,
        notice=notice,
        done="The connect page's branding was saved." if request.query_params.get("done") else None,
        status=status,
    )


@get(f"{APPS}/{{client_id:str}}/template", opt=roles.route(Action.VIEW), include_in_schema=False)
async def template_page(request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    return await _template_page(request, client_id)


@post(
    f"{APPS}/{{client_id:str}}/template",
    opt=roles.route(Action.APP_TEMPLATE),
    include_in_schema=False,
)
async def save_template(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str]
) -> Response[Any]:
    form = await request.form()  # already read (and CSRF-checked) by the guard
    typed: dict[str, str] = {}
    for name in FIELDS:
        value = form.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            raise Refused(400, f"The field {name} is too long.")
        typed[name] = value
    upload = form.get("logo")
    logo = await upload.read() if isinstance(upload, UploadFile) else None
    try:
        change = branding.check_change(
            **typed, logo=logo or None, remove_logo=form.get("remove_logo") == "1"
        )
    except branding.BrandingError as exc:
        return await _template_page(request, client_id, notice=str(exc), typed=typed, status=400)
    member = visit_of(request).member
    if member is None:
        raise Refused(401, "Please sign in.")
    actor = services.member_actor(member)
    now = hub.clock()
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        _, changed = await branding.save(db, app, change, actor=actor, now=now)
        audit.record(
            db,
            now=now,
            actor=actor,
            action="app.template_changed",
            target_type="app",
            target_id=app.id,
            app_id=app.id,
            detail={"changed": changed},
            request_id=audit.request_id(),
        )
    return go(request, f"{_path(client_id)}?done=saved")


TEMPLATE_ROUTES = [template_page, save_template]
