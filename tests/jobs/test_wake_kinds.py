"""A commit wakes only the runner's sources of the kinds of work it queued (`WORK_KINDS`).

Every source's claim is a writing unit of work, and on SQLite the writers take turns: when each
event woke every source, the deliveries' claim waited behind the syncs' and the outbox's, which
had nothing to do (bench/webhooks.py measured the commit-to-delivery time a fifth longer).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Collection

import pytest

from bankhub.jobs.runner import Runner
from tests.conftest import Harness
from tests.jobs.test_outbox import add_endpoint
from tests.jobs.test_wakeup import NOTE, eventually, queue_event, queue_note
from tests.support.raw_http import Receiver

SLOW_POLL = {"worker_poll_seconds": 30.0}


@pytest.mark.parametrize("harness", [SLOW_POLL], indirect=True)
async def test_a_commit_wakes_the_sources_of_the_work_it_queued_and_no_other(
    harness: Harness, receiver: Receiver
) -> None:
    h = harness
    await add_endpoint(h, receiver.url + "/hooks")
    runner = Runner(h.hub)
    claims: collections.Counter[str] = collections.Counter()
    for source in runner.loop.sources:

        async def counted(
            limit: int, *, name: str = source.name, claim: object = source.claim
        ) -> list[Awaitable[bool]]:
            claims[name] += 1
            return await claim(limit)  # type: ignore[operator, no-any-return]

        source.claim = counted  # type: ignore[method-assign]

    async def note(_payload: object) -> None:
        return None

    runner.outbox.handlers[NOTE] = note
    woken: list[frozenset[str] | None] = []  # every wake-up, in-process or by notification
    wake = runner.loop.wake

    def heard(kinds: Collection[str] | None = None) -> None:
        woken.append(None if kinds is None else frozenset(kinds))
        wake(kinds)

    runner.loop.wake = heard  # type: ignore[method-assign]
    h.hub.db.outbox_listeners.append(runner.wake)  # as `serve` wires its embedded runner
    # a commit wakes its own process's runner, and on PostgreSQL every runner by notification
    wakes_per_commit = 2 if h.hub.db.dialect == "postgresql" else 1
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run_forever(stop))
    try:
        if h.hub.db.dialect == "postgresql":  # listening wakes every source once
            await eventually(lambda: runner.listens == 1)
        await eventually(lambda: set(claims) == {"deliveries", "syncs", "outbox"})
        await settled(claims)
        before = dict(claims)
        woken.clear()

        await queue_event(h, h.hub.db)
        await eventually(lambda: len(receiver.received) == 1)
        await eventually(lambda: len(woken) == wakes_per_commit)
        await settled(claims)
        assert set(woken) == {frozenset({"deliveries"})}
        assert claims["syncs"] == before["syncs"]
        assert claims["outbox"] == before["outbox"]
        assert claims["deliveries"] > before["deliveries"]

        during = dict(claims)
        woken.clear()
        await queue_note(h.hub.db, h, "hello")
        await eventually(lambda: claims["outbox"] > during["outbox"])
        await eventually(lambda: len(woken) == wakes_per_commit)
        await settled(claims)
        assert set(woken) == {frozenset({"outbox"})}
        assert claims["syncs"] == during["syncs"]
        assert claims["deliveries"] == during["deliveries"]
    finally:
        stop.set()
        await running
        h.hub.db.outbox_listeners.remove(runner.wake)


async def settled(claims: collections.Counter[str], quiet: float = 0.3) -> None:
    """Until no source has claimed for ``quiet`` seconds: the claims a piece of work causes
    after it is done (its freed slot asks for more) are over before the next step counts."""
    seen = dict(claims)
    while True:
        await asyncio.sleep(quiet)
        if dict(claims) == seen:
            return
        seen = dict(claims)


async def test_an_unknown_kind_of_work_is_refused(harness: Harness) -> None:
    from bankhub.events.services import mark_outbox

    async with harness.hub.db.transaction() as session:
        with pytest.raises(ValueError, match="kinds of background work"):
            mark_outbox(session, "mail")
        with pytest.raises(ValueError, match="kinds of background work"):
            mark_outbox(session)


def test_a_notification_naming_no_known_kind_wakes_every_source() -> None:
    """A process of an older release notifies with an empty payload, and a payload is text any
    process with the runtime role could send: what names no known kind wakes every source (a
    claim that finds nothing costs one unit of work), never none."""
    from bankhub.jobs.wakeup import _kinds

    assert _kinds("deliveries") == frozenset({"deliveries"})
    assert _kinds("outbox,syncs") == frozenset({"outbox", "syncs"})
    assert _kinds("deliveries,nonsense") == frozenset({"deliveries"})
    assert _kinds("") is None
    assert _kinds("nonsense," * 1000) is None
