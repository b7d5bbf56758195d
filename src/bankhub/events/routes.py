"""Reading events in order, and replaying one to the app's webhook endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.openapi import APP_AUTH, APP_SECURITY, MAX_ID, E, errors, query, whole_number
from bankhub.api.principal import AuthDep, HubDep
from bankhub.api.schemas import wire_time
from bankhub.clock import as_utc
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.events.schemas import (
    AttemptOut,
    DeliveryOut,
    EventDetailEnvelope,
    EventDetailOut,
    EventListEnvelope,
    EventOut,
    ReplayEnvelope,
    ReplayOut,
)
from bankhub.security import scopes
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery

AnyRequest = Request[Any, Any, Any]
MAX_EVENTS = 500
#: documented as an id; any other integer in the path is simply no event (404)
EventId = Annotated[int, Parameter(description="An event of the app", schema_extra={"minimum": 1})]


def _number(name: str, value: str | None, default: int, high: int) -> int:
    if value is None or value == "":
        return default
    number = whole_number(value, high)
    if number is None:
        raise DomainError(
            ErrorCode.BAD_REQUEST, f"{name} must be a whole number up to {high}", {name: value[:40]}
        )
    return number


@get(
    "/v2/event",
    opt=scopes.read(),
    tags=["event"],
    summary="Events of the app in order, from a cursor",
    description="Pass the `next_cursor` of one page as `cursor` to read on; `limit` ≤ 500.",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.BAD_REQUEST),
)
async def list_events(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    cursor: Annotated[
        str | None, query("`next_cursor` of the previous page", integer=(0, 2**62))
    ] = None,
    limit: Annotated[
        str | None, query("Events per page, 100 by default", integer=(0, MAX_EVENTS))
    ] = None,
) -> EventListEnvelope:
    after = _number("cursor", cursor, 0, 2**62)
    size = max(1, _number("limit", limit, 100, MAX_EVENTS))
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        rows = (
            (
                await session.execute(
                    select(Event)
                    .where(
                        Event.app_id == app.id, Event.id > after, Event.type != events.TEST_EVENT
                    )
                    .order_by(Event.id)
                    .limit(size + 1)
                )
            )
            .scalars()
            .all()
        )
    page = rows[:size]
    data = [
        EventOut(e.id, e.type, e.login_id, wire_time(as_utc(e.created_at)) or "", e.payload)
        for e in page
    ]
    next_cursor = str(page[-1].id) if page else (str(after) if after else None)
    return EventListEnvelope(data, next_cursor, len(rows) > size)


async def _event_of(session: AsyncSession, app_id: int, event_id: int) -> Event:
    event = await session.get(Event, event_id) if 0 <= event_id <= MAX_ID else None
    if event is None or event.app_id != app_id:
        raise NotFound(ErrorCode.NOT_FOUND, f"No event {event_id}", {"event_id": event_id})
    return event


def _when(value: datetime | None) -> str | None:
    return wire_time(as_utc(value)) if value else None


@get(
    "/v2/event/{event_id:int}",
    opt=scopes.read(),
    tags=["event"],
    summary="One event with its deliveries and every attempt of each",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.NOT_FOUND),
)
async def read_event(
    hub: HubDep, auth: AuthDep, request: AnyRequest, event_id: EventId
) -> EventDetailEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        event = await _event_of(session, app.id, event_id)
        deliveries = (
            (
                await session.execute(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.event_id == event.id)
                    .order_by(WebhookDelivery.id)
                )
            )
            .scalars()
            .all()
        )
        attempts = (
            (
                await session.execute(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
                    .order_by(WebhookAttempt.id)
                )
            )
            .scalars()
            .all()
        )
    by_delivery: dict[int, list[AttemptOut]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(
            AttemptOut(
                _when(attempt.attempted_at) or "",
                attempt.outcome,
                attempt.status_code,
                attempt.error,
                attempt.duration_ms,
            )
        )
    return EventDetailEnvelope(
        EventDetailOut(
            id=event.id,
            type=event.type,
            login_id=event.login_id,
            created_at=_when(event.created_at) or "",
            payload=event.payload,
            deliveries=[
                DeliveryOut(
                    id=d.id,
                    endpoint_id=d.endpoint_id,
                    status=d.status,
                    attempts=d.attempts,
                    next_attempt_at=_when(d.next_attempt_at) if d.status == "pending" else None,
                    delivered_at=_when(d.delivered_at),
                    log=by_delivery.get(d.id, []),
                )
                for d in deliveries
            ],
        )
    )


@post(
    "/v2/event/{event_id:int}/replay",
    opt=scopes.write(),
    status_code=200,
    tags=["event"],
    summary="Send again",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.NOT_FOUND, write=True),
)
async def replay_event(
    hub: HubDep, auth: AuthDep, request: AnyRequest, event_id: EventId
) -> ReplayEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        event = await _event_of(session, app.id, event_id)
        queued = await events.fan_out(session, event, hub.clock())
    return ReplayEnvelope(ReplayOut(event_id, True, queued))


EVENT_ROUTES = [list_events, read_event, replay_event]
