"""Webhooks and signatures of an app: endpoints (their ids, the events each receives), adding,
editing, disabling, re-enabling (with what it missed) and deleting them, signing secrets and
their rotation, a test event to one endpoint, the delivery log with every attempt's payload and
redacted answer (filtered by endpoint, event type and outcome, paged), and replaying one event.
The same services as the API and the CLI; every change of an endpoint needs a recent
re-authentication (S7) and is audited with the member's name."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.principal import HubDep, hub_of
from bankhub.audit import services as audit
from bankhub.dashboard import paging, roles, services
from bankhub.dashboard.app_routes import APPS, app_of, show_once
from bankhub.dashboard.pages import Refused, field_of, go, member_of, page
from bankhub.dashboard.roles import Action
from bankhub.errors import DomainError
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.hub import Hub
from bankhub.security import redact
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from bankhub.webhooks.ssrf import MAX_URL_LENGTH

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]
#: events a page of the delivery log shows unless the reader picks another size
EVENTS_PER_PAGE = 25
#: the delivery log: events newest first, each with its deliveries and attempts
EVENTS = paging.Keyset((paging.Key(Event.id, "int"),))
#: a delivery's states, as the log's outcome filter offers them
OUTCOMES = ("delivered", "failed", "pending", "abandoned")
#: the most of a receiver's answer the page shows (the sender keeps the first KiB)
EXCERPT_CHARS = 1024
#: how long the previous signing secret keeps signing after a rotation, as offered by the form
ROTATION_OVERLAPS = {"0": "none", "3600": "1 hour", "86400": "24 hours"}
DONE = {
    "replayed": "The event was queued again for every endpoint that wants it.",
    "tested": "A test event was queued for the endpoint; its attempts appear in the log below.",
    "edited": "The endpoint was changed.",
    "disabled": "The endpoint was disabled: nothing is sent to it until it is enabled again.",
    "deleted": "The endpoint and its deliveries were deleted.",
    "reauth": "Thank you. You can make the change now.",
}


def _hooks(client_id: str) -> str:
    return f"{APPS}/{client_id}/webhooks"


@dataclass(frozen=True, slots=True)
class LogFilter:
    """The delivery log's filters (each optional; the page is ``paging``'s)."""

    endpoint: str = ""
    type: str = ""
    outcome: str = ""

    def query(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "type": self.type, "outcome": self.outcome}


def _log_filter(request: AnyRequest) -> LogFilter:
    query = request.query_params
    outcome = (query.get("outcome") or "")[:12]
    kind = (query.get("type") or "")[:60]
    return LogFilter(
        endpoint=(query.get("endpoint") or "")[:36],
        type=kind if kind in (*events.EVENT_TYPES, events.TEST_EVENT) else "",
        outcome=outcome if outcome in OUTCOMES else "",
    )


@dataclass(frozen=True, slots=True)
class Shown:
    """An attempt as the page shows it: the receiver's answer redacted and bounded."""

    attempt: WebhookAttempt
    excerpt: str


def _excerpt(text: str) -> str:
    # the receiver's answer is the partner's text, which may echo a secret or an account
    return redact.redact(text[:EXCERPT_CHARS])


async def _webhooks_page(
    request: AnyRequest,
    client_id: str,
    *,
    notice: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response[Any]:
    hub = hub_of(request)
    wanted = _log_filter(request)
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
        matching = [WebhookDelivery.app_id == app.id]
        if wanted.endpoint:
            matching.append(WebhookDelivery.endpoint_id == wanted.endpoint)
        if wanted.outcome:
            matching.append(WebhookDelivery.status == wanted.outcome)
        which = [Event.app_id == app.id]
        if wanted.type:
            which.append(Event.type == wanted.type)
        if wanted.endpoint or wanted.outcome:
            which.append(exists().where(WebhookDelivery.event_id == Event.id, *matching))
        found = await paging.fetch(
            db,
            select(Event).where(*which),
            EVENTS,
            paging.window_of(request.query_params, default=EVENTS_PER_PAGE),
            count=True,
        )
        recent: list[Event] = found.rows
        deliveries = list(
            (
                await db.execute(
                    select(WebhookDelivery)
                    .where(*matching, WebhookDelivery.event_id.in_([e.id for e in recent]))
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
    by_event: dict[int, list[tuple[WebhookDelivery, list[Shown]]]] = {}
    tries: dict[int, list[Shown]] = {}
    for attempt in attempts:
        shown = Shown(attempt, _excerpt(attempt.response_excerpt or ""))
        tries.setdefault(attempt.delivery_id, []).append(shown)
    for delivery in deliveries:
        by_event.setdefault(delivery.event_id, []).append((delivery, tries.get(delivery.id, [])))
    return page(
        request,
        "webhooks.html",
        app=app,
        endpoints=endpoints,
        events=[
            (e, by_event.get(e.id, []), json.dumps(e.payload, indent=2, sort_keys=True))
            for e in recent
        ],
        found=found,
        event_types=events.EVENT_TYPES,
        log_types=(*events.EVENT_TYPES, events.TEST_EVENT),
        outcomes=OUTCOMES,
        log=wanted,
        filtered=any(wanted.query().values()),
        overlaps=ROTATION_OVERLAPS,
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
            # post/redirect/get: a reload shows nothing again and adds no second endpoint
            shown = await show_once(
                request,
                db,
                app,
                "Webhook endpoint added",
                [
                    ("Endpoint id", issued.endpoint.id),
                    (f"Signing secret of {url[:200]}", issued.secret),
                ],
                back=(_hooks(client_id), f"{app.name}'s webhooks"),
                mark="signing-secret",
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
    return go(request, shown)


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
            shown = await show_once(
                request,
                db,
                app,
                "Signing secret rotated",
                [
                    ("Endpoint id", endpoint.id),
                    (f"New signing secret of {endpoint.url[:200]}", secret),
                ],
                back=(_hooks(client_id), f"{app.name}'s webhooks"),
                mark="signing-secret",
            )
    except DomainError as exc:
        return await _webhooks_page(request, client_id, notice=exc.message)
    return go(request, shown)


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
                _audit(db, request, now, webhooks.ENABLED_ACTION, endpoint, caught.audit_detail())
    except DomainError as exc:
        return await _webhooks_page(request, client_id, notice=exc.message)
    return await _webhooks_page(request, client_id, notice=caught.message)


def _audit(
    db: AsyncSession,
    request: AnyRequest,
    now: datetime,
    action: str,
    endpoint: WebhookEndpoint,
    detail: dict[str, Any] | None,
) -> None:
    audit.record(
        db,
        now=now,
        actor=services.member_actor(member_of(request)),
        action=action,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        app_id=endpoint.app_id,
        detail=detail,
    )


async def _change_endpoint(
    hub: Hub,
    request: AnyRequest,
    client_id: str,
    endpoint_id: str,
    change: Callable[[Any, datetime, WebhookEndpoint], Awaitable[None]],
    done: str,
) -> Response[Any]:
    """Find the app's endpoint, apply ``change`` in one transaction and go back to the list
    with ``done``; a refused change shows the page with its message."""
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            endpoint = await webhooks.endpoint_of(db, app.id, endpoint_id[:64])
            await change(db, now, endpoint)
    except DomainError as exc:
        return await _webhooks_page(request, client_id, notice=exc.message)
    return go(request, f"{_hooks(client_id)}?done={done}")


@post(
    f"{APPS}/{{client_id:str}}/webhooks/{{endpoint_id:str}}/edit",
    opt=roles.route(Action.WEBHOOKS_MANAGE),
    include_in_schema=False,
)
async def edit_endpoint(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], endpoint_id: FromPath[str]
) -> Response[Any]:
    """A new URL and event types (none ticked: the seed's two), checked as a new endpoint's;
    the signing secret stays."""
    form = await request.form()
    url = str(form.get("url", ""))[: MAX_URL_LENGTH + 1].strip()
    chosen = [t for t in form.getall("event") if isinstance(t, str)] if "event" in form else []

    async def change(db: Any, now: datetime, endpoint: WebhookEndpoint) -> None:
        changed = await webhooks.update_endpoint(
            db,
            now,
            endpoint,
            url,
            chosen or None,
            allow_http=hub.settings.is_dev,
            allow_private=hub.settings.is_dev,
        )
        if changed:
            _audit(db, request, now, "webhook.endpoint_changed", endpoint, changed)

    return await _change_endpoint(hub, request, client_id, endpoint_id, change, "edited")


@post(
    f"{APPS}/{{client_id:str}}/webhooks/{{endpoint_id:str}}/disable",
    opt=roles.route(Action.WEBHOOKS_MANAGE),
    include_in_schema=False,
)
async def disable_endpoint(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], endpoint_id: FromPath[str]
) -> Response[Any]:

    async def change(db: Any, now: datetime, endpoint: WebhookEndpoint) -> None:
        if await webhooks.disable_endpoint(db, now, endpoint):
            _audit(db, request, now, "webhook.endpoint_disabled", endpoint, {})

    return await _change_endpoint(hub, request, client_id, endpoint_id, change, "disabled")


@post(
    f"{APPS}/{{client_id:str}}/webhooks/{{endpoint_id:str}}/delete",
    opt=roles.route(Action.WEBHOOKS_MANAGE),
    include_in_schema=False,
)
async def delete_endpoint(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], endpoint_id: FromPath[str]
) -> Response[Any]:

    async def change(db: Any, now: datetime, endpoint: WebhookEndpoint) -> None:
        detail = {"url": endpoint.url[:300]}
        _audit(db, request, now, "webhook.endpoint_deleted", endpoint, detail)
        await webhooks.delete_endpoint(db, endpoint)

    return await _change_endpoint(hub, request, client_id, endpoint_id, change, "deleted")


@post(
    f"{APPS}/{{client_id:str}}/webhooks/{{endpoint_id:str}}/test",
    opt=roles.route(Action.EVENTS_REPLAY),
    include_in_schema=False,
)
async def test_endpoint(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], endpoint_id: FromPath[str]
) -> Response[Any]:
    """A ``webhook.test`` event for this endpoint alone, signed and sent by the runner like any
    delivery (docs/webhooks.md)."""

    async def change(db: Any, now: datetime, endpoint: WebhookEndpoint) -> None:
        await webhooks.send_test_event(db, now, endpoint)
        _audit(db, request, now, "webhook.test_sent", endpoint, {})

    done = f"tested&endpoint={endpoint_id[:36]}"
    return await _change_endpoint(hub, request, client_id, endpoint_id, change, done)


WEBHOOK_ROUTES = [
    webhooks_page,
    add_endpoint,
    rotate_secret,
    enable_endpoint,
    replay,
    edit_endpoint,
    disable_endpoint,
    delete_endpoint,
    test_endpoint,
]
