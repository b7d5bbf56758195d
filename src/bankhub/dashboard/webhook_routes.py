"""Webhooks and signatures of an app: endpoints and the events each receives, signing secrets and
their rotation, re-enabling an endpoint a ``410 Gone`` disabled (with what it missed), the
delivery log with every attempt, and replaying one event. The same services as the API and the
CLI; adding or re-enabling an endpoint or rotating a secret needs a recent re-authentication
(S7); every change is audited with the member's name."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody
from sqlalchemy import select

from bankhub.api.principal import HubDep, hub_of
from bankhub.audit import services as audit
from bankhub.dashboard import paging, roles, services
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import Refused, field_of, go, member_of, page
from bankhub.dashboard.roles import Action
from bankhub.errors import DomainError
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from bankhub.webhooks.ssrf import MAX_URL_LENGTH

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]
RECENT_EVENTS = 50
#: the delivery log: events newest first, each with its deliveries and attempts
EVENTS = paging.Keyset((paging.Key(Event.id, "int"),))
#: how long the previous signing secret keeps signing after a rotation, as offered by the form
ROTATION_OVERLAPS = {"0": "none", "3600": "1 hour", "86400": "24 hours"}
DONE = {
    "replayed": "The event was queued again for every endpoint that wants it.",
    "reauth": "Thank you. You can make the change now.",
}


def _hooks(client_id: str) -> str:
    return f"{APPS}/{client_id}/webhooks"


async def _webhooks_page(
    request: AnyRequest,
    client_id: str,
    *,
    notice: str | None = None,
    secret: tuple[str, str] | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response[Any]:
    hub = hub_of(request)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        endpoints = list(
            (
                await db.execute(
                    select(WebhookEndpoint)
                    .where(WebhookEndpoint.app_id == app.id)
                    .order_by(WebhookEndpoint.created_at)
                )
            ).scalars()
        )
        found = await paging.fetch(
            db,
            select(Event).where(Event.app_id == app.id),
            EVENTS,
            paging.window_of(request.query_params, default=RECENT_EVENTS),
            count=True,
        )
        recent: list[Event] = found.rows
        deliveries = list(
            (
                await db.execute(
                    select(WebhookDelivery)
                    .where(
                        WebhookDelivery.app_id == app.id,
                        WebhookDelivery.event_id.in_([e.id for e in recent]),
                    )
                    .order_by(WebhookDelivery.id)
                )
            ).scalars()
        )
        attempts = list(
            (
                await db.execute(
                    select(WebhookAttempt)
                    .where(
                        WebhookAttempt.app_id == app.id,
                        WebhookAttempt.delivery_id.in_([d.id for d in deliveries]),
                    )
                    .order_by(WebhookAttempt.id)
                )
            ).scalars()
        )
    by_event: dict[int, list[tuple[WebhookDelivery, list[WebhookAttempt]]]] = {}
    tries: dict[int, list[WebhookAttempt]] = {}
    for attempt in attempts:
        tries.setdefault(attempt.delivery_id, []).append(attempt)
    for delivery in deliveries:
        by_event.setdefault(delivery.event_id, []).append((delivery, tries.get(delivery.id, [])))
    return page(
        request,
        "webhooks.html",
        app=app,
        endpoints=endpoints,
        events=[(e, by_event.get(e.id, [])) for e in recent],
        found=found,
        event_types=events.EVENT_TYPES,
        overlaps=ROTATION_OVERLAPS,
        secret=secret,
        notice=notice or found.problem,
        errors=errors or {},
        values=values or {},
        done=DONE.get(request.query_params.get("done", "")),
    )


@get(f"{APPS}/{{client_id:str}}/webhooks", opt=roles.route(Action.VIEW), include_in_schema=False)
async def webhooks_page(request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    return await _webhooks_page(request, client_id)


@post(
    f"{APPS}/{{client_id:str}}/webhooks",
    opt=roles.route(Action.WEBHOOKS_MANAGE),
    include_in_schema=False,
)
async def add_endpoint(hub: HubDep, request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    """A new endpoint for the chosen event types (none ticked: the seed's two); secret shown
    once."""
    form = await request.form()
    url = str(form.get("url", ""))[: MAX_URL_LENGTH + 1].strip()
    chosen = [t for t in form.getall("event") if isinstance(t, str)] if "event" in form else []
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            issued = await webhooks.create_endpoint(
                db,
                hub.keyring,
                now,
                app.id,
                url,
                chosen or None,
                allow_http=hub.settings.is_dev,
                allow_private=hub.settings.is_dev,
            )
            audit.record(
                db,
                now=now,
                actor=services.member_actor(member_of(request)),
                action="webhook.endpoint_created",
                target_type="webhook_endpoint",
                target_id=issued.endpoint.id,
                app_id=app.id,
                detail={"url": url[:300], "events": issued.endpoint.events},
            )
    except DomainError as exc:
        # at the field it is about, with what was typed and ticked kept
        problems = " ".join(str(p) for p in exc.extra.get("problems", []))
        field = "url" if "url" in problems or "event" not in problems else "event"
        return await _webhooks_page(
            request,
            client_id,
            errors={field: exc.message},
            values={"url": url, "events": chosen},
        )
    return await _webhooks_page(
        request, client_id, secret=(f"Signing secret of {url[:200]}", issued.secret)
    )


@post(
    f"{APPS}/{{client_id:str}}/webhooks/{{endpoint_id:str}}/rotate",
    opt=roles.route(Action.WEBHOOKS_MANAGE),
    include_in_schema=False,
)
async def rotate_secret(
    hub: HubDep,
    request: AnyRequest,
    client_id: FromPath[str],
    endpoint_id: FromPath[str],
    data: Form,
) -> Response[Any]:
    """A new signing secret; the old one also signs for the chosen overlap (S37)."""
    overlap = field_of(data, "overlap") or "86400"
    if overlap not in ROTATION_OVERLAPS:
        return await _webhooks_page(request, client_id, notice="Choose one of the overlaps.")
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            endpoint = await webhooks.endpoint_of(db, app.id, endpoint_id[:64])
            secret = await webhooks.rotate_secret(
                db, hub.keyring, now, endpoint, timedelta(seconds=int(overlap))
            )
            audit.record(
                db,
                now=now,
                actor=services.member_actor(member_of(request)),
                action="webhook.secret_rotated",
                target_type="webhook_endpoint",
                target_id=endpoint.id,
                app_id=app.id,
                detail={"overlap_seconds": int(overlap)},
            )
    except DomainError as exc:
        return await _webhooks_page(request, client_id, notice=exc.message)
    return await _webhooks_page(
        request, client_id, secret=(f"New signing secret of {endpoint.url[:200]}", secret)
    )


@post(
    f"{APPS}/{{client_id:str}}/events/{{event_id:int}}/replay",
    opt=roles.route(Action.EVENTS_REPLAY),
    include_in_schema=False,
)
async def replay(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], event_id: FromPath[int]
) -> Response[Any]:
    """Queue one event again for every enabled endpoint that subscribes to its type (S38)."""
    now = hub.clock()
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        event = await db.get(Event, event_id)
        if event is None or event.app_id != app.id:
            raise Refused(404, "No such event.")
        queued = await events.fan_out(db, event, now)
        audit.record(
            db,
            now=now,
            actor=services.member_actor(member_of(request)),
            action="event.replayed",
            target_type="event",
            target_id=event.id,
            app_id=app.id,
            detail={"queued": queued},
        )
    return go(request, f"{_hooks(client_id)}?done=replayed")


@post(
    f"{APPS}/{{client_id:str}}/webhooks/{{endpoint_id:str}}/enable",
    opt=roles.route(Action.WEBHOOKS_MANAGE),
    include_in_schema=False,
)
async def enable_endpoint(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], endpoint_id: FromPath[str]
) -> Response[Any]:
    """Enable an endpoint a 410 disabled; what it missed is queued in order, or the page says
    from which cursor to read the event feed (docs/webhooks.md)."""
    now = hub.clock()
    try:
        async with hub.db.transaction(write=True) as db:
            app = await app_of(db, client_id)
            endpoint = await webhooks.endpoint_of(db, app.id, endpoint_id[:64])
            caught = await webhooks.enable_endpoint(
                db, now, endpoint, limit=hub.settings.webhook_catch_up_limit
            )
            if not caught.was_enabled:
                audit.record(
                    db,
                    now=now,
                    actor=services.member_actor(member_of(request)),
                    action=webhooks.ENABLED_ACTION,
                    target_type="webhook_endpoint",
                    target_id=endpoint.id,
                    app_id=app.id,
                    detail=caught.audit_detail(),
                )
    except DomainError as exc:
        return await _webhooks_page(request, client_id, notice=exc.message)
    return await _webhooks_page(request, client_id, notice=caught.message)


WEBHOOK_ROUTES = [webhooks_page, add_endpoint, rotate_secret, enable_endpoint, replay]
