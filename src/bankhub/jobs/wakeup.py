"""Wake-ups across processes on PostgreSQL: a commit that queued work notifies, runners listen.

The notification is sent inside the transaction that queued the work (``Database`` does it for
every unit of work marked by ``events.mark_outbox``), so PostgreSQL delivers it when, and only
if, that transaction commits: a runner woken by it finds the work committed. Each runner listens
on a connection of its own outside the pool (asyncpg's ``add_listener``; a pooled connection
would go back to other work), and wakes its loops at once.

A notification is only a hint. Polling stays the safety net: a runner whose connection drops
polls as before while it reconnects, and looks for work once as soon as it listens again (for
what was queued meanwhile). A connection that died without a word (a network partition) is
found by a ``SELECT 1`` every ``PING_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # ships no type hints
from sqlalchemy.ext.asyncio import AsyncEngine

from bankhub.db.engine import WORK_CHANNEL, WORK_KINDS

log = logging.getLogger("bankhub.jobs")

#: how often an idle listening connection proves it is still there
PING_SECONDS = 30.0
#: the most a ping, a connect or a close may take
TIMEOUT_SECONDS = 10.0
#: the first pause before connecting again, doubled after each failure up to the last
RETRY_SECONDS = (0.5, 30.0)
#: what a notification wakes: the sources of the kinds of work it names (None: every source)
Wake = Callable[[Collection[str] | None], None]
#: options of SQLAlchemy's own in the URL, which asyncpg does not take
_NOT_ASYNCPG = ("prepared_statement_cache_size", "prepared_statement_name_func")


def connect_args(engine: AsyncEngine) -> dict[str, Any]:
    """asyncpg's ``connect`` arguments for the database ``engine`` talks to (the same host,
    role, password and TLS settings as the pool's connections)."""
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    for option in _NOT_ASYNCPG:
        kwargs.pop(option, None)
    return dict(kwargs)


async def listen(
    engine: AsyncEngine,
    wake: Wake,
    stop: asyncio.Event,
    *,
    listening: Callable[[], None] | None = None,
) -> None:
    """LISTEN on the work channel until ``stop``, calling ``wake`` for every notification (and
    once whenever listening starts); when the connection fails, connect again after a pause
    that doubles with each failure (``RETRY_SECONDS``). ``listening`` is told each time the
    LISTEN is in place."""
    args = connect_args(engine)
    first, most = RETRY_SECONDS
    pause = first
    while not stop.is_set():
        try:
            connection = await asyncio.wait_for(asyncpg.connect(**args), TIMEOUT_SECONDS)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("cannot listen for queued work (polling meanwhile): %s", exc)
            await _pause(stop, pause)
            pause = min(most, pause * 2)
            continue
        try:
            await _listen_on(connection, wake, stop, listening)
            pause = first
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("listening for queued work failed (polling meanwhile): %s", exc)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), TIMEOUT_SECONDS)
        await _pause(stop, pause)


def _kinds(payload: str) -> frozenset[str] | None:
    """The kinds of work a notification names; None (wake every source) when it names none
    this process knows (a process of an older release notifies with an empty payload)."""
    return frozenset(payload.split(",")) & WORK_KINDS or None


async def _listen_on(
    connection: Any,
    wake: Wake,
    stop: asyncio.Event,
    listening: Callable[[], None] | None,
) -> None:
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _connection: lost.set())
    await connection.add_listener(
        WORK_CHANNEL, lambda _connection, _pid, _channel, payload: wake(_kinds(payload))
    )
    if listening is not None:
        listening()
    wake(None)  # what was queued while nobody listened
    while not stop.is_set():
        ended = await _first(stop, lost, PING_SECONDS)
        if lost.is_set() or connection.is_closed():
            log.warning("the connection listening for queued work closed; reconnecting")
            return
        if not ended:
            await asyncio.wait_for(connection.fetchval("SELECT 1"), TIMEOUT_SECONDS)


async def _first(one: asyncio.Event, other: asyncio.Event, seconds: float) -> bool:
    """Wait for either event, at most ``seconds``; whether one was set."""
    waits = [asyncio.ensure_future(one.wait()), asyncio.ensure_future(other.wait())]
    try:
        done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
    return bool(done)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
