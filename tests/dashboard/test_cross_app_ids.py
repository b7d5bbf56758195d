"""S13 in the dashboard: a page of app A given the id of app B's object answers exactly as for
a missing id, and changes nothing of B.

Team members run every app, so the dashboard has no tenant wall between apps for them to cross;
what it must never do is act on B's customer, login, key, event or endpoint through A's pages
(a pasted or forged URL). Generated from the dashboard's route table: every route whose path
names an app and another object (a payment too) is probed, and a new one with an id kind this
test does not know fails here, by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from litestar.handlers import HTTPRouteHandler
from sqlalchemy import select

from bankhub.dashboard.roles import Role
from bankhub.oauth.models import TokenFamily
from bankhub.webhooks.models import WebhookEndpoint
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member
from tests.security.test_keys_and_scopes import create_app_for_inspection
from tests.security.test_tenant_matrix import (
    Tenant,
    _everything,
    _rows_of,
    _world,
    make_settings_for_inspection,
)

Visitors = Callable[..., Visitor]
#: a valid form for every probed POST (each route reads the fields it knows): a leak would act
FORM = {"overlap": "86400", "referers": "https://shop.example.com", "confirm": "yes"}
PARAM = re.compile(r"\{(\w+):\w+\}")
#: each id kind a dashboard path takes besides the app: B's object, and one that exists nowhere
MISSING: dict[str, str] = {
    "customer_id": "00000000-0000-4000-8000-000000000000",
    "login_id": "999999999",
    "event_id": "999999999",
    "key_id": "key_0000000000000000",
    "endpoint_id": "we_missing",
    "family_id": "fam_000000000000000000000000",
    "payment_id": "00000000-0000-4000-8000-000000000000",
    "signature_key_id": "sk_missing",
    "signature_source_id": "ks_missing",
}


def cross_app_routes() -> list[tuple[str, str, list[str]]]:
    """(method, path, object params) of every dashboard route naming an app and an object."""
    app = create_app_for_inspection(make_settings_for_inspection())
    found = []
    for route in app.routes:
        if not route.path.startswith("/dashboard/"):
            continue
        params = PARAM.findall(route.path)
        if "client_id" not in params or len(params) < 2:
            continue
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler):
                for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                    found.append((method, route.path, [p for p in params if p != "client_id"]))
    return sorted(found)


def test_every_cross_app_route_has_an_id_kind_we_probe() -> None:
    routes = cross_app_routes()
    assert routes, "the dashboard has no route naming an app and an object"
    unknown = sorted({p for _, _, params in routes for p in params} - set(MISSING))
    assert not unknown, f"dashboard routes take id kinds this test cannot probe: {unknown}"


async def _endpoint_id(h: Harness, app_id: int) -> str:
    async with _everything(h.hub.db) as db:
        found = await db.execute(
            select(WebhookEndpoint.id).where(WebhookEndpoint.app_id == app_id).limit(1)
        )
        return str(found.scalar_one())


async def _family_id(h: Harness, app_id: int) -> str:
    async with _everything(h.hub.db) as db:
        found = await db.execute(
            select(TokenFamily.id).where(TokenFamily.app_id == app_id).limit(1)
        )
        return str(found.scalar_one())


def _path(template: str, client_id: str, ids: dict[str, str]) -> str:
    values = {"client_id": client_id, **ids}
    return PARAM.sub(lambda m: values[m.group(1)], template)


def _ids_of(b: Tenant, endpoint_id: str, family_id: str) -> dict[str, str]:
    return {
        "family_id": family_id,
        "customer_id": b.customer_id,
        "login_id": str(b.login_id),
        "event_id": str(b.event_id),
        "key_id": b.key_id,
        "endpoint_id": endpoint_id,
        "payment_id": b.payment_id,
        "signature_key_id": b.signature_key_id,
        "signature_source_id": b.signature_source_id,
    }


def _answer(response: Any, masked: list[str]) -> tuple[int, str | None, str]:
    text = re.sub(r'name="csrf" value="[^"]*"', "", response.text)
    for value in masked:
        text = text.replace(value, "<id>")
    return response.status_code, response.headers.get("location"), text


async def test_another_apps_ids_on_an_apps_pages_answer_like_missing_ones(
    harness: Harness, visitors: Visitors
) -> None:
    world = await _world(harness)
    b = world.b
    client_a = harness.creds["client_id"]
    foreign = _ids_of(b, await _endpoint_id(harness, b.app_id), await _family_id(harness, b.app_id))
    v = visitors()
    await v.sign_in(await make_member(harness, Role.OWNER))
    before = await _rows_of(harness, b.app_id)

    probed = 0
    for method, template, params in cross_app_routes():
        for param in params:
            theirs = _path(template, client_a, {**MISSING, param: foreign[param]})
            missing = _path(template, client_a, MISSING)
            answers = []
            for path in (theirs, missing):
                await v.get(f"/dashboard/apps/{client_a}")  # a fresh CSRF token, as a page gives
                response = await (v.post(path, FORM) if method == "POST" else v.get(path))
                answers.append(_answer(response, [foreign[param], MISSING[param]]))
            assert answers[0] == answers[1], f"{method} {template} with B's {param}"
            status, _, text = answers[1]
            # the missing id is refused: a 404 page, or the app's page saying there is none
            refused = status == 404 or (status == 200 and "No webhook endpoint" in text)
            assert refused, f"{method} {template}: {status} {text[:300]}"
            probed += 1
    assert probed >= 7
    assert await _rows_of(harness, b.app_id) == before, "an A page changed B's rows"
