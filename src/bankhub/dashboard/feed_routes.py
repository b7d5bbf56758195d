"""An app's Bank Feed: every run that brought rows in (connects, refreshes, statement files over
the API, the command line and the SFTP drop) as it happens, and a test connect to the sandbox.

The page is a plain list, 50 runs a page, newest first; ``feed.js`` (our own origin, as the
page's CSP allows) asks ``feed.json`` for the newest runs every few seconds and adds the ones
the page does not show yet, so the list follows along without a reload. Polling, not
server-sent events: a stream held open per tab would pin one connection of every API process
for as long as a member looks, and the JSON answer is one indexed query. The JSON route is
*passive* (``pages.PASSIVE``): it does not count as the member's activity, so a tab left open
still reaches the idle timeout (S6).

"Connect a test bank" runs the real connect page against a sandbox bank for the app's test
customer (:data:`TEST_CUSTOMER`, one clearly named customer per app, made on first use, so that
test logins are told apart from the end users' in Consent Control); the connect page sends the
member back to :data:`RETURNED`, which forgets the login-secret in the callback and shows the
new login and its accounts. Showing them is a read of account data, audited as the API's are.
The sandbox users (usernames, password, codes and what each does) are read from the sandbox
connector itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody
from litestar.response import File, Redirect

from bankhub.api.principal import HubDep, hub_of, public_url
from bankhub.audit import services as audit
from bankhub.catalogue import Catalogue, Service
from bankhub.connectors.sandbox import connector as sandbox
from bankhub.customers import services as customers
from bankhub.dashboard import roles, services
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import HEADERS, PASSIVE, PREFIX, Refused, field_of, go, member_of, page
from bankhub.dashboard.roles import Action
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners import modes
from bankhub.partners.models import App
from bankhub.sync import feed

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]
STATIC = Path(__file__).parent / "static"

PAGE_SIZE = 50
#: the newest runs ``feed.json`` answers with (the script adds those it does not show yet)
POLL_SIZE = 20
#: the customer every test connect of an app belongs to (made on first use)
TEST_CUSTOMER = "dashboard-test-bank"
#: where the connect page sends a member back after a test connect (the seed's callback form)
RETURNED = f"{PREFIX}/feed/returned"
DONE = {
    "cancelled": "The test connect was cancelled on the connect page; nothing was stored.",
    "error": "The test connect did not succeed; the connect page said why. Nothing was stored.",
}


def sandbox_banks(catalogue: Catalogue, app: App) -> list[Service]:
    """The sandbox banks the app may connect (none in live mode)."""
    return [s for s in modes.visible(app, catalogue.services) if modes.is_sandbox(s) and s.listed]


def why_no_test_connect(catalogue: Catalogue, app: App) -> str | None:
    """Why the app cannot connect a test bank, in words for the page; None when it can."""
    if modes.mode_of(app) is modes.Mode.LIVE:
        return (
            "This app is in live mode, which hides the sandbox banks. An owner or admin can "
            "switch it to sandbox or both on the app's page to connect a test bank."
        )
    if not sandbox_banks(catalogue, app):
        return "This hub's catalogue lists no sandbox bank, so there is none to connect."
    return None


def sandbox_users() -> list[tuple[str, str]]:
    """(username, what the bank does) as the sandbox connector knows them."""
    return sorted(sandbox.USERS.items(), key=lambda item: (item[0] != "user_good", item[0]))


def _before(text: str | None) -> int | None:
    if text and text.isascii() and text.isdigit() and len(text) < 19:
        return int(text)
    return None


def _wire(entry: feed.Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.strftime("%Y-%m-%d %H:%M:%S"),
        "source": entry.source,
        "connector": entry.connector,
        "bank": entry.bank,
        "login_id": entry.login_id,
        "customer": entry.customer,
        "file_name": entry.file_name,
        "added": entry.added,
        "skipped": entry.skipped,
        "ok": entry.ok,
        "outcome": entry.outcome,
        "error": entry.error,
        "milliseconds": entry.milliseconds,
    }


async def _tested_login(request: AnyRequest, app: App, login_id: int) -> dict[str, Any] | None:
    """The login a test connect made, with its accounts; audited as a read of account data."""
    hub = hub_of(request)
    async with hub.db.transaction() as db:
        login = await db.get(Login, login_id)
        if login is None or login.app_id != app.id:
            return None
        accounts = await feed.login_accounts(db, app.id, login.id)
        service = hub.catalogue.get(login.service_id)
        audit.record(
            db,
            now=hub.clock(),
            actor=services.member_actor(member_of(request)),
            action=audit.READ,
            target_type="login",
            target_id=str(login.id),
            app_id=app.id,
            detail={
                "resource": "dashboard_test_connect",
                "route": f"GET {request.url.path}"[:200],
                "customer_id": login.customer_id,
                "account_ids": [a.id for a in accounts],
            },
            request_id=audit.request_id(),
        )
        return {
            "id": login.id,
            "status": login.status,
            "bank": service.name if service else str(login.service_id),
            "accounts": accounts,
        }


@get(f"{APPS}/{{client_id:str}}/feed", opt=roles.route(Action.VIEW), include_in_schema=False)
async def feed_page(hub: HubDep, request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    """The newest runs (or those older than ``before``), the test connect and the sandbox users."""
    params = request.query_params
    before = _before(params.get("before"))
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        rows = await feed.entries(db, hub.catalogue, app.id, before=before, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    tested = None
    login_id = _before(params.get("login"))
    if login_id is not None:
        tested = await _tested_login(request, app, login_id)
        if tested is None:
            raise Refused(404, "No such login.")
    return page(
        request,
        "feed.html",
        app=app,
        entries=rows,
        first_page=before is None,
        older=rows[-1].id if more and rows else None,
        banks=sandbox_banks(hub.catalogue, app),
        why_not=why_no_test_connect(hub.catalogue, app),
        users=sandbox_users(),
        password=sandbox.PASSWORD,
        code=sandbox.ONE_TIME_CODE,
        answer=sandbox.SECURITY_ANSWER,
        test_customer=TEST_CUSTOMER,
        tested=tested,
        done=DONE.get(params.get("done", "")),
    )


@get(
    f"{APPS}/{{client_id:str}}/feed.json",
    opt={**roles.route(Action.VIEW), PASSIVE: True},
    include_in_schema=False,
)
async def feed_json(hub: HubDep, client_id: FromPath[str]) -> Response[Any]:
    """The newest runs for the page's script; not a member's activity (see the module)."""
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        rows = await feed.entries(db, hub.catalogue, app.id, limit=POLL_SIZE)
    return Response(
        content={"entries": [_wire(entry) for entry in rows]},
        media_type=MediaType.JSON,
        headers=HEADERS,
    )


@get(f"{PREFIX}/static/feed.js", opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def feed_script() -> File:
    return File(
        path=STATIC / "feed.js",
        media_type="text/javascript",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@post(
    f"{APPS}/{{client_id:str}}/feed/test-connect",
    opt=roles.route(Action.CONNECT_TEST),
    include_in_schema=False,
)
async def test_connect(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    """A connect token for the app's test customer at the chosen sandbox bank; the member's
    browser goes on to the connect page."""
    text = field_of(data, "service_id").strip()
    service_id = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0
    me = member_of(request)
    base = public_url(hub, request)
    async with hub.db.transaction(write=True) as db:
        app = await app_of(db, client_id)
        why = why_no_test_connect(hub.catalogue, app)
        if why is not None:
            raise Refused(403, why)
        chosen = [s for s in sandbox_banks(hub.catalogue, app) if s.id == service_id]
        if not chosen:
            raise Refused(400, "Choose one of the sandbox banks.")
        customer = await customers.find_by_identifier(db, app.id, TEST_CUSTOMER)
        if customer is None:
            customer = await customers.create_customer(db, hub.clock, app, TEST_CUSTOMER)
        token = await logins.create_token(
            db,
            hub.clock,
            hub.settings.token_ttl_seconds,
            app,
            customer,
            chosen[0],
            f"{base}{RETURNED}/{app.client_id}",
        )
        audit.record(
            db,
            now=hub.clock(),
            actor=services.member_actor(me),
            action="app.test_connect",
            target_type="customer",
            target_id=customer.id,
            app_id=app.id,
            detail={"service_id": service_id},
            request_id=audit.request_id(),
        )
    return Redirect(f"{base}/v2/connect/term/{token.id}", status_code=303, headers=HEADERS)


@get(f"{RETURNED}/{{outcome:path}}", opt=roles.route(Action.VIEW), include_in_schema=False)
async def test_connect_returned(
    hub: HubDep, request: AnyRequest, outcome: FromPath[str]
) -> Response[Any]:
    """The test connect's callback (``<client-id>/<the seed's JSON>``): the login-secret in it
    is dropped here, and the member lands on the feed showing the new login."""
    client_id, _, said_text = outcome.lstrip("/").partition("/")
    try:
        said = json.loads(said_text)
    except ValueError:
        said = None
    if not isinstance(said, dict):
        raise Refused(400, "This is not a test connect's callback.")
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        login_id = said.get("login_id")
        if said.get("status") != "success" or not isinstance(login_id, int):
            status = "cancelled" if said.get("status") == "cancelled" else "error"
            return go(request, f"{APPS}/{app.client_id}/feed?done={status}")
        login = await db.get(Login, login_id)
        if login is None or login.app_id != app.id:
            raise Refused(404, "No such login.")
    return go(request, f"{APPS}/{app.client_id}/feed?login={login_id}#tested")


FEED_ROUTES = [feed_page, feed_json, feed_script, test_connect, test_connect_returned]
