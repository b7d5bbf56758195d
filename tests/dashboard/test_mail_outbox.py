"""Team mail goes through the outbox (``jobs.outbox``): queued in the unit of work of the change
that causes it, sent by the runner after the commit, never when the change rolls back, retried
while the mail server refuses it, given up after ``MAX_ATTEMPTS``, sent once by one runner of
many, and not lost when the process that was to send it dies. The mail servers are real SMTP
servers on loopback (aiosmtpd)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy import delete, select

from bankhub.dashboard import alerts
from bankhub.dashboard.models import SmtpSettings
from bankhub.dashboard.roles import Role
from bankhub.jobs import identity, outbox
from bankhub.jobs.outbox import OutboxMessage
from bankhub.jobs.runner import Runner, Tally
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.dashboard.conftest import MailSink, SmtpServer
from tests.dashboard.support import Visitor, make_member
from tests.dashboard.test_alerts import _smtp, mail_out
from tests.jobs.test_wakeup import eventually
from tests.support.postgres import free_port

Visitors = Callable[..., Visitor]


class Refusing(MailSink):
    """Answers the first ``refusals`` messages with a temporary failure, as a busy server does."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.refused = 0

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        if self.refused < self.refusals:
            self.refused += 1
            return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def busy_smtp() -> Iterator[tuple[SmtpServer, Refusing]]:
    sink = Refusing(refusals=2)
    port = free_port("127.0.0.1")
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, sink), sink
    finally:
        controller.stop()


async def rows(h: Harness) -> list[OutboxMessage]:
    async with h.hub.db.transaction() as session:
        return list(
            (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars()
        )


async def test_the_alert_leaves_after_the_commit_and_never_when_the_sign_in_rolls_back(
    harness: Harness,
    visitors: Visitors,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = harness
    await _smtp(h, smtp_server.host, smtp_server.port)
    person = await make_member(h, Role.DEVELOPER)
    queue = alerts.queue_alert

    async def queued_then_failed(*args: Any) -> bool:
        await queue(*args)
        raise RuntimeError("the sign-in fails after it queued its alert")

    monkeypatch.setattr(alerts, "queue_alert", queued_then_failed)
    v = visitors()
    await v.get("/dashboard/sign-in")
    await v.post("/dashboard/sign-in", {"email": person.email, "password": person.password})
    await v.get("/dashboard/sign-in/code")
    failed = await v.post("/dashboard/sign-in/code", {"code": person.code(h)})
    assert failed.status_code == 500
    assert await rows(h) == []  # rolled back with the sign-in
    assert await mail_out(h) == 0
    assert smtp_server.messages == []

    monkeypatch.setattr(alerts, "queue_alert", queue)
    h.clock.advance(seconds=30)
    await visitors().sign_in(person)
    [row] = await rows(h)
    assert (row.kind, row.status) == (alerts.SIGN_IN_ALERT, outbox.PENDING)
    assert smtp_server.messages == []  # committed, not sent: that is the runner's work
    assert await mail_out(h) == 1
    [mailed] = smtp_server.messages
    assert mailed["To"] == person.email
    [row] = await rows(h)
    assert (row.status, row.attempts, row.lease_owner) == (outbox.SENT, 1, None)


async def test_a_mail_the_server_refuses_is_sent_again_later_and_once(
    harness: Harness, visitors: Visitors, busy_smtp: tuple[SmtpServer, Refusing]
) -> None:
    h = harness
    server, sink = busy_smtp
    await _smtp(h, server.host, server.port)
    person = await make_member(h, Role.OWNER)
    await visitors().sign_in(person)

    assert await mail_out(h) == 0  # 451
    [row] = await rows(h)
    assert (row.status, row.attempts, row.lease_owner) == (outbox.PENDING, 1, None)
    assert "451" in (row.last_error or "")
    assert await mail_out(h) == 0  # not due yet: nothing was tried
    assert sink.refused == 1

    h.clock.advance(seconds=outbox.RETRY_SECONDS[0] * 1.2 + 1)
    assert await mail_out(h) == 0  # 451 again
    assert sink.refused == 2
    h.clock.advance(seconds=outbox.RETRY_SECONDS[0] * 2 * 1.2 + 1)
    assert await mail_out(h) == 1
    [row] = await rows(h)
    assert (row.status, row.attempts, row.last_error) == (outbox.SENT, 3, None)
    h.clock.advance(hours=2)
    assert await mail_out(h) == 0
    assert len(server.messages) == 1


async def test_a_mail_that_cannot_be_sent_ends_failed(harness: Harness, visitors: Visitors) -> None:
    h = harness
    await _smtp(h, "127.0.0.1", free_port("127.0.0.1"))  # nobody listens there
    person = await make_member(h, Role.OWNER)
    await visitors().sign_in(person)
    for tries in range(1, outbox.MAX_ATTEMPTS + 1):
        assert await mail_out(h) == 0
        [row] = await rows(h)
        assert row.attempts == tries
        h.clock.advance(seconds=outbox.RETRY_SECONDS[1] * 1.2 + 1)
    assert (row.status, row.lease_owner) == (outbox.FAILED, None)
    assert row.finished_at is not None
    assert await mail_out(h) == 0
    assert (await rows(h))[0].attempts == outbox.MAX_ATTEMPTS  # given up: never tried again

    # kept a while to show what became of it, then purged
    h.clock.advance(days=outbox.KEEP.days + 1)
    await Runner(h.hub).housekeeping.sweep()
    assert await rows(h) == []


async def test_mail_settings_removed_before_the_send_fail_the_mail_at_once(
    harness: Harness, visitors: Visitors, smtp_server: SmtpServer
) -> None:
    h = harness
    await _smtp(h, smtp_server.host, smtp_server.port)
    person = await make_member(h, Role.OWNER)
    await visitors().sign_in(person)
    async with h.hub.db.transaction() as session:
        await session.execute(delete(SmtpSettings))
    assert await mail_out(h) == 0
    [row] = await rows(h)
    assert (row.status, row.attempts) == (outbox.FAILED, 1)
    assert "not set up" in (row.last_error or "")


async def test_two_runners_send_each_mail_once(harness: Harness, smtp_server: SmtpServer) -> None:
    h = harness
    await _smtp(h, smtp_server.host, smtp_server.port)
    async with h.hub.db.transaction() as session:
        for n in range(6):
            alert = alerts.NewBrowser(f"m{n}@example.com", h.clock(), "127.0.0.1", "test")
            assert await alerts.queue_alert(session, alert, h.clock())
    one, two = Runner(h.hub, owner="one").outbox, Runner(h.hub, owner="two").outbox
    first, second = await asyncio.gather(one.claim_due(6), two.claim_due(6))
    assert sorted(m.id for m in first + second) == [r.id for r in await rows(h)]
    sent = await asyncio.gather(*(one.send(m) for m in first), *(two.send(m) for m in second))
    assert all(sent)
    assert sorted(m["To"] for m in smtp_server.messages) == [f"m{n}@example.com" for n in range(6)]
    assert await mail_out(h) == 0


@pytest.mark.parametrize("harness", [{"lease_seconds": 300}], indirect=True)
async def test_a_queued_mail_outlives_the_process_that_was_to_send_it(
    harness: Harness, visitors: Visitors, smtp_server: SmtpServer
) -> None:
    h = harness
    await _smtp(h, smtp_server.host, smtp_server.port)
    person = await make_member(h, Role.OWNER)
    me = identity.claim(h.hub.settings, "worker")
    try:
        await visitors().sign_in(person)  # committed; then the worker is killed
        dead = Runner(h.hub, owner=f"{me.name}#deadbeef")  # an earlier incarnation of `me`
        [claimed] = await dead.outbox.claim_due(10)  # it died between its claim and the send
        assert await mail_out(h) == 0  # leased for 300 s: nobody else may send it meanwhile
        assert smtp_server.messages == []

        stop = asyncio.Event()
        restarted = Runner(h.hub, identity=me)
        running = asyncio.create_task(restarted.run_forever(stop))
        try:

            async def sent() -> bool:
                return [r.status for r in await rows(h)] == [outbox.SENT]

            await eventually(sent)  # the clock never moved: no lease lapsed
        finally:
            stop.set()
            await running
    finally:
        me.release()
    [row] = await rows(h)
    assert (row.id, row.status, row.attempts) == (claimed.id, outbox.SENT, 2)
    assert smtp_server.messages[0]["To"] == person.email


async def test_consent_mails_are_queued_with_the_sweep_that_claims_the_notices(
    harness: Harness, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep that fails after it queued its mails leaves no mail and no claimed notice: the
    next sweep tells (and mails) it."""
    h = harness
    await _smtp(h, smtp_server.host, smtp_server.port)
    await make_member(h, Role.OWNER)
    await connect(h, "user_good")
    h.clock.advance(days=83, hours=1)  # 7 days left
    runner = Runner(h.hub)
    queue = runner.consent.notify
    assert queue is not None

    async def queued_then_failed(*args: Any) -> object:
        await queue(*args)
        raise RuntimeError("the sweep fails after it queued its mails")

    monkeypatch.setattr(runner.consent, "notify", queued_then_failed)
    with pytest.raises(RuntimeError):
        await runner.consent.sweep()
    assert await rows(h) == []
    monkeypatch.setattr(runner.consent, "notify", queue)
    assert await runner.consent.sweep() == 1
    assert await mail_out(h) == 1
    assert len(smtp_server.messages) == 1


def test_the_loop_imports_no_dashboard_hub_api_or_sync() -> None:
    """The generic loop is given its sources by the composition root (``jobs.runner``); it
    imports none of the layers above it (its leases know the rows they release)."""
    import subprocess  # nosec B404 - the test's own interpreter
    import sys

    probe = (
        "import sys, bankhub.jobs.loop; "
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('bankhub.')}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    for domain in ("dashboard", "sync", "hub", "api", "lifecycle"):
        assert f"'{domain}'" not in found, found


async def test_a_send_that_ends_as_the_runner_stops_is_recorded_not_sent_again(
    harness: Harness,
) -> None:
    """The stop cancels the work under way; a message already handed over has its outcome
    written all the same, or it would be released and sent a second time."""
    h = harness
    async with h.hub.db.transaction() as session:
        outbox.enqueue(session, "test.note", {"text": "once"}, h.clock())
    runner = Runner(h.hub)
    stop = asyncio.Event()
    handed: list[str] = []

    async def note(payload: Mapping[str, Any]) -> None:
        handed.append(str(payload["text"]))
        stop.set()  # told to stop just as the message left

    runner.outbox.handlers["test.note"] = note
    await runner.run_forever(stop)
    [row] = await rows(h)
    assert (row.status, row.attempts, row.lease_owner) == (outbox.SENT, 1, None)
    assert await Runner(h.hub).run_once() == Tally(0, 0, 0)
    assert handed == ["once"]
