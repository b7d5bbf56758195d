"""Events' wire shapes (``GET /v2/event``, ``GET /v2/event/{id}``, the replay)."""

from __future__ import annotations

from typing import Any

import msgspec

from bankhub.api.schemas import VERSION


class EventOut(msgspec.Struct):
    id: int
    type: str
    login_id: int | None
    created_at: str
    #: exactly the body the webhook carries
    payload: dict[str, Any]


class EventListEnvelope(msgspec.Struct):
    data: list[EventOut]
    next_cursor: str | None
    has_more: bool
    version: str = VERSION


class AttemptOut(msgspec.Struct):
    attempted_at: str
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(msgspec.Struct):
    id: int
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: str | None
    delivered_at: str | None
    log: list[AttemptOut]


class EventDetailOut(msgspec.Struct):
    id: int
    type: str
    login_id: int | None
    created_at: str
    payload: dict[str, Any]
    deliveries: list[DeliveryOut]


class EventDetailEnvelope(msgspec.Struct):
    data: EventDetailOut
    version: str = VERSION


class ReplayOut(msgspec.Struct):
    id: int
    replayed: bool
    deliveries: int


class ReplayEnvelope(msgspec.Struct):
    data: ReplayOut
    version: str = VERSION
