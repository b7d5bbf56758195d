"""The API request log of an app: its partner API calls, newest first, searchable by request
id, status (exact or class), route and error code, paged by id. Read-only, for every member;
what is recorded, and what never is, is in ``bankhub.requestlog``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from bankhub.api.principal import HubDep
from bankhub.context import sane
from bankhub.dashboard import roles
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import page
from bankhub.dashboard.roles import Action
from bankhub.errors import ErrorCode
from bankhub.requestlog import store

AnyRequest = Request[Any, Any, Any]
#: the status filter's choices, beside any exact status typed in
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
#: error codes the API answers with (the form's suggestions; OAuth's are typed in)
ERROR_CODES = sorted(str(code) for code in ErrorCode)


def _wanted(request: AnyRequest) -> store.Search:
    query = request.query_params

    def text(name: str, limit: int) -> str:
        return (query.get(name) or "")[:limit].strip()

    before = text("before", 19)
    return store.Search(
        request_id=sane(text("request_id", 64)) or "",
        status=text("status", 3),
        route=text("route", 200),
        error_code=text("error_code", 40),
        before=int(before) if before.isdigit() else None,
    )


@get(f"{APPS}/{{client_id:str}}/requests", opt=roles.route(Action.VIEW), include_in_schema=False)
async def requests_page(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str]
) -> Response[Any]:
    wanted = _wanted(request)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        found = await store.search(db, app.id, wanted)
    filters = {
        "request_id": wanted.request_id,
        "status": wanted.status,
        "route": wanted.route,
        "error_code": wanted.error_code,
    }
    return page(
        request,
        "requests.html",
        app=app,
        calls=found.rows,
        older=found.older,
        filters=filters,
        searched=any(filters.values()) or wanted.before is not None,
        status_classes=STATUS_CLASSES,
        error_codes=ERROR_CODES,
        days=hub.settings.request_log_days,
    )


REQUEST_ROUTES = [requests_page]
