"""Webhook endpoints: creation with a signing secret shown once, rotation with an overlap,
changing an endpoint's URL and types, disabling it by hand, deleting it, a test event, and
re-enabling an endpoint that was disabled (by a ``410 Gone`` or by hand), with what it missed
meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import as_utc
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.events.services import DEFAULT_EVENT_TYPES, EVENT_TYPES
from bankhub.security.crypto import Cipher, associated_data
from bankhub.webhooks import signing
from bankhub.webhooks.models import WebhookDelivery, WebhookEndpoint
from bankhub.webhooks.ssrf import Resolver, UnsafeUrl, check_url_syntax, resolve_target

TABLE = "webhook_endpoints"
#: how long creating an endpoint waits for its host to resolve
RESOLVE_SECONDS = 5.0
#: the most missed events re-enabling an endpoint queues again; past it, the event feed
#: (``GET /v2/event``) is the way to catch up (``BANKHUB_WEBHOOK_CATCH_UP_LIMIT``)
CATCH_UP_LIMIT = 1000
#: the audit action of re-enabling an endpoint (API, CLI and dashboard alike)
ENABLED_ACTION = "webhook.endpoint_enabled"


def _aad(endpoint: WebhookEndpoint, column: str) -> bytes:
    return associated_data(endpoint.app_id, TABLE, column, endpoint.id)


@dataclass(frozen=True, slots=True)
class IssuedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


def _refused(url: str, reason: str) -> DomainError:
    return DomainError(
        ErrorCode.DATA_INVALID,
        f"webhook url refused: {reason}",
        {"url": url, "problems": [f"url: {reason}"]},
    )


async def check_endpoint_url(
    url: str,
    *,
    allow_http: bool,
    allow_private: bool,
    resolver: Resolver | None = None,
    resolve_seconds: float = RESOLVE_SECONDS,
) -> None:
    """Raise DataInvalid unless ``url`` may receive webhooks (S39).

    Unless ``allow_private`` (dev), the host is resolved now and every address it resolves to
    must be public, as before each delivery (where it is checked again: DNS can change). A
    host that does not resolve, or not within ``resolve_seconds``, is refused too: nothing
    could be checked.
    """
    try:
        if allow_private:
            check_url_syntax(url, allow_http=allow_http)
            return
        async with asyncio.timeout(resolve_seconds):
            await resolve_target(url, allow_private=False, allow_http=allow_http, resolver=resolver)
    except UnsafeUrl as exc:
        raise _refused(url, str(exc)) from None
    except TimeoutError:
        raise _refused(url, f"its host did not resolve within {resolve_seconds:g} s") from None
    except OSError as exc:
        raise _refused(url, f"its host could not be resolved ({exc})") from None


def subscription(types: Sequence[str] | None) -> list[str]:
    """The event types an endpoint will receive: those given (each once, in their order), or
    the seed's two (``transactions.new``, ``login.status``) when none are given. Raises
    DataInvalid naming the types bankhub does not know."""
    unknown = sorted(set(types or ()) - set(EVENT_TYPES))
    if unknown:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "unknown event types",
            {"unknown": unknown, "known": EVENT_TYPES},
        )
    return list(dict.fromkeys(types)) if types else list(DEFAULT_EVENT_TYPES)


async def _checked(
    url: str,
    events: Sequence[str] | None,
    allow_http: bool,
    allow_private: bool | None,
    resolver: Resolver | None,
) -> list[str]:
    """The event types an endpoint at ``url`` gets, once the URL passed the checks a new and a
    changed endpoint both go through (S39)."""
    await check_endpoint_url(
        url,
        allow_http=allow_http,
        allow_private=allow_http if allow_private is None else allow_private,
        resolver=resolver,
    )
    return subscription(events)


async def create_endpoint(
    session: AsyncSession,
    box: Cipher,
    now: datetime,
    app_id: int,
    url: str,
    events: Sequence[str] | None = None,
    *,
    allow_http: bool,
    allow_private: bool | None = None,
    resolver: Resolver | None = None,
) -> IssuedEndpoint:
    """A new endpoint with its signing secret (to be shown once), for the event types given or,
    without any, the seed's two (see :func:`subscription`).

    ``allow_http`` and ``allow_private`` are dev's leniencies (plain http, loopback and
    private receivers); ``allow_private`` follows ``allow_http`` unless given, as both follow
    the environment. Outside dev the URL's host is resolved and checked before anything is
    stored: see :func:`check_endpoint_url`.
    """
    chosen = await _checked(url, events, allow_http, allow_private, resolver)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        app_id=app_id,
        url=url,
        events=chosen,
        secret_enc="",  # encrypted below, once the row has its id  # nosec B106
        created_at=now,
        updated_at=now,
    )
    endpoint.secret_enc = box.encrypt_text(secret, _aad(endpoint, "secret"))
    session.add(endpoint)
    await session.flush()
    return IssuedEndpoint(endpoint, secret)


async def update_endpoint(
    session: AsyncSession,
    now: datetime,
    endpoint: WebhookEndpoint,
    url: str,
    events: Sequence[str] | None,
    *,
    allow_http: bool,
    allow_private: bool | None = None,
    resolver: Resolver | None = None,
) -> dict[str, object]:
    """A new URL and list of types for ``endpoint``, checked as a new endpoint's are (S39); its
    signing secret stays. What changed, for the audit."""
    chosen = await _checked(url, events, allow_http, allow_private, resolver)
    changed: dict[str, object] = {}
    if url != endpoint.url:
        changed["url"] = url[:300]
        endpoint.url = url
    if chosen != endpoint.events:
        changed["events"] = chosen
        endpoint.events = chosen
    if changed:
        endpoint.updated_at = now
        await session.flush()
    return changed


#: why an endpoint a member disabled is disabled (shown on the page and over the API)
DISABLED_BY_HAND = "disabled from the dashboard"


async def disable_endpoint(
    session: AsyncSession, now: datetime, endpoint: WebhookEndpoint, reason: str = DISABLED_BY_HAND
) -> bool:
    """Stop sending to ``endpoint``: what is queued for it is abandoned when its turn comes,
    nothing new is queued, and re-enabling it sends what it missed (:func:`enable_endpoint`).
    False when it was disabled already."""
    if endpoint.disabled_at is not None:
        return False
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason
    endpoint.updated_at = now
    await session.flush()
    return True


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    """Delete ``endpoint`` with its deliveries and their attempts (the foreign keys cascade);
    the events stay, in the feed."""
    await session.delete(endpoint)
    await session.flush()


async def send_test_event(session: AsyncSession, now: datetime, endpoint: WebhookEndpoint) -> Event:
    """A ``webhook.test`` event queued for ``endpoint`` alone: signed and sent by the runner as
    every delivery is, with its attempts in the delivery log. Refused for a disabled endpoint,
    which is sent nothing."""
    if endpoint.disabled_at is not None:
        raise DomainError(ErrorCode.BAD_REQUEST, "Enable the endpoint before sending it a test.")
    return await events.record(
        session,
        app_id=endpoint.app_id,
        type=events.TEST_EVENT,
        payload=events.test_payload(endpoint.id),
        now=now,
        only=[endpoint.id],
    )


async def rotate_secret(
    session: AsyncSession, box: Cipher, now: datetime, endpoint: WebhookEndpoint, overlap: timedelta
) -> str:
    """A new secret signs from now on; the old one also signs until ``now + overlap``."""
    current = box.decrypt_text(endpoint.secret_enc, _aad(endpoint, "secret"))
    secret = signing.new_secret()
    endpoint.previous_secret_enc = box.encrypt_text(current, _aad(endpoint, "previous_secret"))
    endpoint.previous_expires_at = now + overlap
    endpoint.secret_enc = box.encrypt_text(secret, _aad(endpoint, "secret"))
    endpoint.updated_at = now
    await session.flush()
    return secret


def signing_secrets(box: Cipher, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets to sign with: the current one, and the previous one during its overlap."""
    secrets = [box.decrypt_text(endpoint.secret_enc, _aad(endpoint, "secret"))]
    if (
        endpoint.previous_secret_enc
        and endpoint.previous_expires_at
        and as_utc(endpoint.previous_expires_at) > now
    ):
        secrets.append(
            box.decrypt_text(endpoint.previous_secret_enc, _aad(endpoint, "previous_secret"))
        )
    return secrets


class SecretCache:
    """Decrypted signing secrets kept per process, so a busy endpoint is not decrypted per send.

    Entries are keyed by the endpoint and its ciphertexts: a rotation (or a rewrap under a new
    data key) writes new ciphertexts, so the next read of the row misses the cache and decrypts
    afresh; nothing has to be told. Whether the previous secret still signs is decided at each
    use from the row's ``previous_expires_at``, never cached.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, str | None], tuple[str, str | None]] = (
            OrderedDict()
        )

    def signing_secrets(
        self,
        box: Cipher,
        *,
        endpoint_id: str,
        app_id: int,
        secret_enc: str,
        previous_secret_enc: str | None,
        previous_expires_at: datetime | None,
        now: datetime,
    ) -> list[str]:
        """As :func:`signing_secrets`, from the endpoint's columns."""
        key = (endpoint_id, secret_enc, previous_secret_enc)
        opened = self._entries.get(key)
        if opened is None:
            aad = associated_data(app_id, TABLE, "secret", endpoint_id)
            current = box.decrypt_text(secret_enc, aad)
            previous = None
            if previous_secret_enc:
                aad = associated_data(app_id, TABLE, "previous_secret", endpoint_id)
                previous = box.decrypt_text(previous_secret_enc, aad)
            opened = (current, previous)
            self._entries[key] = opened
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        current, previous = opened
        if previous is not None and previous_expires_at and as_utc(previous_expires_at) > now:
            return [current, previous]
        return [current]


async def endpoint_of(session: AsyncSession, app_id: int, endpoint_id: str) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.app_id == app_id, WebhookEndpoint.id == endpoint_id
    )
    endpoint = (await session.execute(query)).scalar_one_or_none()
    if endpoint is None:
        raise NotFound(ErrorCode.NOT_FOUND, f"No webhook endpoint {endpoint_id[:64]}")
    return endpoint


# --- re-enabling --------------------------------------------------------------------------------


def feed_cursor_before(event_id: int) -> str:
    """The ``GET /v2/event`` cursor from which the feed's next page starts at ``event_id``
    (a cursor names the last event already read)."""
    return str(max(event_id - 1, 0))


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What re-enabling an endpoint did about the events it missed while it was disabled.

    ``missed``: the events of its types it has not received since it was disabled, from
    ``first_event_id`` on. ``queued``: how many of them were queued again, in event order
    (all of them, or none when there were more than ``limit``: then ``feed_cursor`` is where
    ``GET /v2/event`` reads them from). ``was_enabled``: the endpoint was not disabled, and
    nothing changed.
    """

    missed: int
    queued: int
    limit: int
    first_event_id: int | None = None
    feed_cursor: str | None = None
    was_enabled: bool = False
    #: when and why it had been disabled
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    @property
    def message(self) -> str:
        if self.was_enabled:
            return "The endpoint was enabled already; nothing changed."
        if not self.missed:
            return "The endpoint is enabled again; it missed no event."
        if self.queued:
            noun, were = ("event", "was") if self.queued == 1 else ("events", "were")
            return (
                f"The endpoint is enabled again; the {self.queued} {noun} it missed "
                f"(from event {self.first_event_id} on) {were} queued for it in order."
            )
        return (
            f"The endpoint is enabled again, but it missed {self.missed} events, more than the "
            f"{self.limit} re-enabling sends again, so none was queued: read them from the event "
            f"feed, GET /v2/event?cursor={self.feed_cursor} (from event {self.first_event_id} "
            "on), and from there on as usual."
        )

    def audit_detail(self) -> dict[str, object]:
        """What the audit entry of the re-enabling keeps (no URL, no secret)."""
        return {
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
            "disabled_reason": self.disabled_reason,
            "missed": self.missed,
            "queued": self.queued,
            "first_event_id": self.first_event_id,
            "feed_cursor": self.feed_cursor,
        }


async def _first_missed(session: AsyncSession, endpoint: WebhookEndpoint, after: int) -> int | None:
    """The oldest event the endpoint missed in its latest disabled spell.

    The ``410`` that disabled it abandoned that event's delivery and every delivery still
    pending for it, and the runner abandons any it claims while the endpoint is disabled: the
    oldest such event after ``after`` is where the spell began. Events recorded while it was
    disabled have no delivery for it; without any abandoned delivery (a row disabled by hand),
    the spell begins with the first event recorded since ``disabled_at``.
    """
    abandoned = await session.scalar(
        select(func.min(WebhookDelivery.event_id)).where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status == "abandoned",
            WebhookDelivery.event_id > after,
        )
    )
    if abandoned is not None:
        return int(abandoned)
    if endpoint.disabled_at is None:
        return None
    since = await session.scalar(
        select(func.min(Event.id)).where(
            Event.app_id == endpoint.app_id,
            Event.id > after,
            Event.created_at >= endpoint.disabled_at,
        )
    )
    return None if since is None else int(since)


async def enable_endpoint(
    session: AsyncSession,
    now: datetime,
    endpoint: WebhookEndpoint,
    *,
    limit: int = CATCH_UP_LIMIT,
) -> CatchUp:
    """Enable ``endpoint`` again and queue, in event order, a delivery of every event of its
    types that it missed since it was disabled, unless there are more than ``limit``: then
    nothing is queued and the answer names the event feed's cursor to read them from.

    "Missed": from the first event of the latest disabled spell (:func:`_first_missed`) on,
    each event of the endpoint's types without a delivery to it that is pending or was
    delivered. The webhook-id of each is the event's own (``evt_<id>``), as on its first
    attempt, so a receiver that saw one before de-duplicates it.

    On PostgreSQL the endpoint's row is locked first (``FOR UPDATE``): events being recorded
    for the app hold ``FOR KEY SHARE`` on it (:func:`bankhub.events.services.fan_out`), so each
    is either committed before the search below or queued by its own fan-out once this commits.
    """
    locked = await session.execute(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    endpoint = locked.scalar_one()
    if endpoint.disabled_at is None:
        return CatchUp(missed=0, queued=0, limit=limit, was_enabled=True)
    disabled_at, reason = as_utc(endpoint.disabled_at), endpoint.disabled_reason
    after = endpoint.resumed_after_event_id or 0
    first = await _first_missed(session, endpoint, after)
    newest = await session.scalar(select(func.max(Event.id)).where(Event.app_id == endpoint.app_id))
    missed_ids: list[int] = []
    total = 0
    if first is not None:
        received = exists().where(
            WebhookDelivery.event_id == Event.id,
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status.in_(("pending", "delivered")),
        )
        wanted = [
            Event.app_id == endpoint.app_id,
            Event.id >= first,
            Event.id > after,
            ~received,
        ]
        if endpoint.events is not None:
            wanted.append(Event.type.in_(endpoint.events))
        missed_ids = list(
            (
                await session.execute(
                    select(Event.id).where(*wanted).order_by(Event.id).limit(limit + 1)
                )
            ).scalars()
        )
        total = len(missed_ids)
        if total > limit:
            total = int(
                await session.scalar(select(func.count()).select_from(Event).where(*wanted)) or 0
            )
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    endpoint.resumed_after_event_id = max(int(newest or 0), after)
    endpoint.updated_at = now
    queued, cursor = 0, None
    if missed_ids and total > limit:
        cursor = feed_cursor_before(missed_ids[0])
    elif missed_ids:
        # In event order: the runner sends due deliveries in the order of their ids (at equal
        # times), and one multi-row insert numbers its rows in the order given.
        await session.execute(
            insert(WebhookDelivery),
            [
                {
                    "app_id": endpoint.app_id,
                    "event_id": event_id,
                    "endpoint_id": endpoint.id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for event_id in missed_ids
            ],
        )
        queued = total
        events.mark_outbox(session, "deliveries")
    await session.flush()
    return CatchUp(
        missed=total,
        queued=queued,
        limit=limit,
        first_event_id=missed_ids[0] if missed_ids else None,
        feed_cursor=cursor,
        disabled_at=disabled_at,
        disabled_reason=reason,
    )
