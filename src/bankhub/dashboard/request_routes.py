"""The API request log of an app: its partner API calls, newest first, searchable by request
id, status (exact or class), route and error code, paged as every list (``paging``, by id, with
no count: the log is as large as the app's traffic over its days, like the audit log). Read-only,
for every member; what is recorded, and what never is, is in ``bankhub.requestlog``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from bankhub.api.principal import HubDep
from bankhub.context import sane
from bankhub.dashboard import paging, roles
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import page
from bankhub.dashboard.roles import Action
from bankhub.errors import ErrorCode
from bankhub.requestlog import store
from bankhub.requestlog.models import ApiRequest

AnyRequest = Request[Any, Any, Any]
PAGE_SIZE = 50
#: newest first (ids grow with time)
CALLS = paging.Keyset((paging.Key(ApiRequest.id, "int"),))
#: the status filter's choices, beside any exact status typed in
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
#: error codes the API answers with (the form's suggestions; OAuth's are typed in)
ERROR_CODES = sorted(str(code) for code in ErrorCode)


def _wanted(request: AnyRequest) -> store.Search:
    query = request.query_params

    def text(name: str, limit: int) -> str:
        return (query.get(name) or "")[:limit].strip()

    return store.Search(
        request_id=sane(text("request_id", 64)) or "",
        status=text("status", 3),
        route=text("route", 200),
        error_code=text("error_code", 40),
    )


@get(f"{APPS}/{{client_id:str}}/requests", opt=roles.route(Action.VIEW), include_in_schema=False)
async def requests_page(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str]
) -> Response[Any]:
    wanted = _wanted(request)
    window = paging.window_of(request.query_params, default=PAGE_SIZE)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        found = await paging.fetch(db, store.search(app.id, wanted), CALLS, window)
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
        found=found,
        filters=filters,
        searched=any(filters.values()),
        status_classes=STATUS_CLASSES,
        error_codes=ERROR_CODES,
        days=hub.settings.request_log_days,
        notice=found.problem,
    )


REQUEST_ROUTES = [requests_page]
