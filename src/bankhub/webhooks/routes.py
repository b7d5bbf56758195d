"""``/v2/webhook``: the app's webhook endpoints, whether each is enabled (and if not, since when
and why), and re-enabling one that a ``410 Gone`` disabled, with what it missed meanwhile."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, put
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler
from sqlalchemy import select

from bankhub.api import request_context
from bankhub.api.openapi import APP_AUTH, APP_SECURITY, E, errors
from bankhub.api.principal import AuthDep, HubDep
from bankhub.api.schemas import VERSION, wire_time
from bankhub.audit import services as audit
from bankhub.clock import as_utc
from bankhub.security import scopes
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookEndpoint

AnyRequest = Request[Any, Any, Any]
EndpointId = Annotated[str, msgspec.Meta(max_length=64)]


class WebhookOut(msgspec.Struct):
    id: str
    url: str
    #: the event types it receives
    events: list[str]
    enabled: bool
    #: when a ``410 Gone`` disabled it, and why (``null`` while it is enabled)
    disabled_at: str | None
    disabled_reason: str | None
    created_at: str


class WebhookEnvelope(msgspec.Struct):
    data: WebhookOut
    version: str = VERSION


class WebhookListEnvelope(msgspec.Struct):
    data: list[WebhookOut]
    version: str = VERSION


class CatchUpOut(msgspec.Struct):
    #: events of its types it did not receive while it was disabled
    missed: int
    #: how many of them were queued again, in event order (all, or none past ``limit``)
    queued: int
    limit: int
    #: the oldest event it missed
    first_event_id: int | None
    #: when nothing was queued: read ``GET /v2/event?cursor=<feed_cursor>`` to catch up
    feed_cursor: str | None
    message: str


class EnabledOut(msgspec.Struct):
    endpoint: WebhookOut
    catch_up: CatchUpOut


class EnabledEnvelope(msgspec.Struct):
    data: EnabledOut
    version: str = VERSION


def catch_up_out(caught: webhooks.CatchUp) -> CatchUpOut:
    return CatchUpOut(
        missed=caught.missed,
        queued=caught.queued,
        limit=caught.limit,
        first_event_id=caught.first_event_id,
        feed_cursor=caught.feed_cursor,
        message=caught.message,
    )


def endpoint_out(endpoint: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events or []),
        enabled=endpoint.disabled_at is None,
        disabled_at=wire_time(as_utc(endpoint.disabled_at)) if endpoint.disabled_at else None,
        disabled_reason=endpoint.disabled_reason,
        created_at=wire_time(as_utc(endpoint.created_at)) or "",
    )


@get(
    "/v2/webhook",
    opt=scopes.read(),
    tags=["webhook"],
    summary="The app's webhook endpoints",
    description="Each with the event types it receives and, when a `410 Gone` disabled it, "
    "since when and why (`disabled_at`, `disabled_reason`).",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
)
async def list_webhooks(hub: HubDep, auth: AuthDep, request: AnyRequest) -> WebhookListEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        rows = await session.execute(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.app_id == app.id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return WebhookListEnvelope([endpoint_out(e) for e in rows.scalars()])


@get(
    "/v2/webhook/{endpoint_id:str}",
    opt=scopes.read(),
    tags=["webhook"],
    summary="One webhook endpoint",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.NOT_FOUND),
)
async def read_webhook(
    hub: HubDep, auth: AuthDep, request: AnyRequest, endpoint_id: FromPath[EndpointId]
) -> WebhookEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        return WebhookEnvelope(
            endpoint_out(await webhooks.endpoint_of(session, app.id, endpoint_id))
        )


@put(
    "/v2/webhook/{endpoint_id:str}/enable",
    opt=scopes.master(),
    tags=["webhook"],
    summary="Enable an endpoint again; what it missed is queued in order",
    description=(
        "An endpoint that answered `410 Gone` was disabled and received nothing since. Enabling "
        "it queues, in event order, a delivery of every event of its types that it missed "
        "(from the delivery the `410` answered on), each with its usual `webhook-id`. When it "
        "missed more than `catch_up.limit` events (`BANKHUB_WEBHOOK_CATCH_UP_LIMIT`, 1,000 by "
        "default), nothing is queued: read them from the event feed, "
        "`GET /v2/event?cursor=<catch_up.feed_cursor>`. An endpoint that is enabled already is "
        "left as it is. Audited."
    ),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.NOT_FOUND, write=True),
)
async def enable_webhook(
    hub: HubDep, auth: AuthDep, request: AnyRequest, endpoint_id: FromPath[EndpointId]
) -> EnabledEnvelope:
    async with hub.db.transaction(write=True) as session:
        app = await auth.app(session)
        now = hub.clock()
        endpoint = await webhooks.endpoint_of(session, app.id, endpoint_id)
        caught = await webhooks.enable_endpoint(
            session, now, endpoint, limit=hub.settings.webhook_catch_up_limit
        )
        if not caught.was_enabled:
            audit.record(
                session,
                now=now,
                actor=f"app:{app.client_id}",
                action=webhooks.ENABLED_ACTION,
                target_type="webhook_endpoint",
                target_id=endpoint.id,
                app_id=app.id,
                detail={
                    **caught.audit_detail(),
                    "by": audit.credential(request_context.of(request).caller),
                },
                request_id=audit.request_id(),
            )
        return EnabledEnvelope(EnabledOut(endpoint_out(endpoint), catch_up_out(caught)))


WEBHOOK_ROUTES: list[ControllerRouterHandler] = [list_webhooks, read_webhook, enable_webhook]
