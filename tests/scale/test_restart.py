"""A worker killed mid-sync and mid-delivery, or mid-mail, restarted: the work resumes at once,
not after the lease; and on PostgreSQL an API process's commit wakes a separate worker at once.

Real processes on SQLite and on PostgreSQL: an API-only ``bankhub serve`` makes two logins
through the connect page (``user_slow`` and ``user_good``, whose connect queues a
``transactions.new`` delivery) and stops. ``bankhub worker`` A runs with a 300 s lease while the
sandbox bank takes a minute to answer ``user_slow`` and the webhook receiver holds the first
request: once A holds both leases it is SIGKILLed. Worker B starts on the same data dir (so under
the same identity, ``jobs.identity``) with a quick bank: it must sync the login and deliver the
webhook within seconds, and the attempt A started shows in the log as interrupted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import as_utc
from bankhub.dashboard import alerts, mail
from bankhub.dashboard.models import SmtpSettings
from bankhub.jobs import outbox
from bankhub.jobs.outbox import OutboxMessage
from bankhub.logins.models import Login
from bankhub.sync.models import SyncRun
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.scale.support import (
    SECRET_KEY,
    HookReceiver,
    Store,
    Worker,
    bankhub_cli,
    connect,
    create_app,
    database,
    service_ids,
    wait_until,
)
from tests.support.postgres import free_port
from tests.support.server_plugin import LiveServerFactory

LEASE = "300"
#: the restarted worker must finish well inside the lease
RESUMED_WITHIN = 15.0


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    peer = HookReceiver(hold=1).start()
    try:
        yield peer
    finally:
        peer.stop()


def state(db: Any, login_id: int) -> tuple[str | None, list[tuple[str, str]], list[Any]]:
    """The login's lease holder, its sync runs (worker, outcome) and the delivery's attempts."""

    async def work(session: AsyncSession) -> tuple[str | None, list[tuple[str, str]], list[Any]]:
        login = await session.get(Login, login_id)
        assert login is not None
        runs = (
            await session.execute(
                # the scheduled runs (a connect's first sync is a run of its own, by "request")
                select(SyncRun.worker, SyncRun.outcome).where(
                    SyncRun.login_id == login_id, SyncRun.kind == "scheduled"
                )
            )
        ).all()
        attempts = (
            (await session.execute(select(WebhookAttempt).order_by(WebhookAttempt.id)))
            .scalars()
            .all()
        )
        return login.sync_lease_owner, [(w, o) for w, o in runs], list(attempts)

    found: tuple[str | None, list[tuple[str, str]], list[Any]] = db(work)
    return found


def delivery(db: Any) -> WebhookDelivery:
    async def work(session: AsyncSession) -> WebhookDelivery:
        rows = await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))
        first = rows.scalars().first()
        assert first is not None
        return first

    found: WebhookDelivery = db(work)
    return found


def test_a_worker_killed_mid_sync_and_mid_delivery_resumes_at_once_when_restarted(
    store: Store, receiver: HookReceiver, live_server: LiveServerFactory, tmp_path: Path
) -> None:
    env = {
        **store.env,
        "BANKHUB_EMBEDDED_WORKER": "false",
        "BANKHUB_LEASE_SECONDS": LEASE,
        "BANKHUB_WORKER_POLL_SECONDS": "0.2",
        "BANKHUB_SANDBOX_SLOW_SECONDS": "0.1",
        "BANKHUB_CONNECTOR_TIMEOUT_SECONDS": "120",
    }
    db = database(store.url)
    server = live_server(
        {**env, "BANKHUB_SECRET_KEY": SECRET_KEY, "BANKHUB_CREATE_DEMO_APP": "false"},
        data_dir=store.data_dir,
    )
    service = service_ids()[0]
    # no webhook endpoint yet: only the second connect's event is delivered
    creds = create_app(env, tmp_path, receiver.url + "/hook")
    receiver.secret = creds["webhook_secret"]
    slow = connect(server.url, creds, service, "user_slow", "restart-slow")
    server.stop()

    async def only_one_delivery(session: AsyncSession) -> None:
        first = (await session.execute(select(WebhookDelivery.id))).scalars().first()
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id != first).values(status="failed")
        )
        await session.execute(
            update(Login).where(Login.id == slow.login_id).values(next_sync_at=datetime.now(UTC))
        )

    db(only_one_delivery)

    first = Worker({**env, "BANKHUB_SANDBOX_SLOW_SECONDS": "60"}, tmp_path, tmp_path / "a.log")
    try:
        owner_a = first.wait_running()
        wait_until(
            lambda: bool(receiver.arrivals) and state(db, slow.login_id)[0] is not None,
            30,
            "worker A holding the sync and the delivery",
            step=0.05,
        )
        sent_at = receiver.arrivals[0]
        assert (state(db, slow.login_id)[0] or "").startswith(owner_a + "/")
        first.kill()
    finally:
        first.close()

    second = Worker(env, tmp_path, tmp_path / "b.log")
    try:
        owner_b = second.wait_running()
        started = time.monotonic()
        assert owner_b.split("#")[0] == owner_a.split("#")[0]  # the same identity
        assert owner_b != owner_a  # a new incarnation

        def resumed() -> bool:
            holder, runs, _ = state(db, slow.login_id)
            return holder is None and runs != [] and delivery(db).status == "delivered"

        wait_until(resumed, RESUMED_WITHIN, "the restarted worker resuming", step=0.1)
        took = time.monotonic() - started
        assert second.terminate() == 0, second.output()
    finally:
        second.close()

    _, runs, attempts = state(db, slow.login_id)
    assert runs == [(owner_b, "ok")]
    assert [(a.outcome, a.status_code) for a in attempts] == [
        ("interrupted", None),
        ("delivered", 200),
    ]
    cut = attempts[0]
    # recorded when it started: before the request reached the receiver, not when A died
    assert abs(as_utc(cut.attempted_at).timestamp() - sent_at) < 2.0
    assert "cut short" in (cut.error or "")
    row = delivery(db)
    assert (row.attempts, row.lease_owner) == (2, None)
    assert [h.verified for h in receiver.hits] == [True, True]
    print(f"\n[{store.kind}] resumed {took:.1f} s after the restart (lease {LEASE} s)")


@pytest.mark.postgres
def test_an_api_process_commit_wakes_a_separate_worker_at_once(
    postgres_url: str, live_server: LiveServerFactory, tmp_path: Path
) -> None:
    receiver = HookReceiver().start()
    try:
        data_dir = tmp_path / "data"
        env = {
            "BANKHUB_DATA_DIR": str(data_dir),
            "BANKHUB_DATABASE_URL": postgres_url,
            "BANKHUB_EMBEDDED_WORKER": "false",
            "BANKHUB_WORKER_POLL_SECONDS": "30",
        }
        bankhub_cli(["migrate"], env, tmp_path)
        creds = create_app(env, tmp_path, receiver.url + "/hook")
        server = live_server(
            {**env, "BANKHUB_SECRET_KEY": SECRET_KEY, "BANKHUB_CREATE_DEMO_APP": "false"},
            data_dir=data_dir,
        )
        worker = Worker(env, tmp_path, tmp_path / "worker.log")
        try:
            worker.wait_running()
            time.sleep(1.0)  # past the worker's first look for work, and listening
            connect(server.url, creds, service_ids()[0], "user_good", "woken")
            committed = time.time()  # the connect's sync committed its event before this
            wait_until(lambda: bool(receiver.arrivals), 5, "the webhook", step=0.01)
            waited = receiver.arrivals[0] - committed
        finally:
            worker.close()
    finally:
        receiver.stop()
    assert waited < 1.0, f"{waited:.2f} s with a 30 s poll"
    print(f"\ndelivered {waited * 1000:.0f} ms after the API process answered")


class HoldingMailServer:
    """aiosmtpd's handler: holds the first message in DATA (its sender is killed meanwhile),
    takes the others."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.accepted: list[bytes] = []
        self.held = 0

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        if self.held == 0:
            self.held += 1
            self.arrived.set()
            await asyncio.sleep(60)
            return "451 4.3.0 too late"
        self.accepted.append(content)
        return "250 OK"


def test_a_worker_killed_mid_mail_has_it_sent_once_by_its_restarted_self(
    store: Store, tmp_path: Path
) -> None:
    """The outbox: a mail queued by a committed change, whose worker is SIGKILLed while the mail
    server holds it, is sent by the restarted worker at once (not after the 300 s lease)."""
    env = {**store.env, "BANKHUB_LEASE_SECONDS": LEASE, "BANKHUB_WORKER_POLL_SECONDS": "0.2"}
    bankhub_cli(["migrate"], env, tmp_path)
    handler = HoldingMailServer()
    port = free_port("127.0.0.1")
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    db = database(store.url)

    async def queue_alert(session: AsyncSession) -> None:
        now = datetime.now(UTC)
        session.add(
            SmtpSettings(
                id=mail.ROW_ID,
                host="127.0.0.1",
                port=port,
                security="none",
                username=None,
                password_enc=None,
                sender="hub@example.com",
                updated_by="test",
                updated_at=now,
            )
        )
        alert = alerts.NewBrowser("member@example.com", now, "192.0.2.7", "a browser")
        outbox.enqueue(session, alerts.SIGN_IN_ALERT, msgspec.to_builtins(alert), now)

    async def the_row(session: AsyncSession) -> OutboxMessage:
        return (await session.execute(select(OutboxMessage))).scalar_one()

    def message() -> OutboxMessage:
        found: OutboxMessage = db(the_row)
        return found

    try:
        db(queue_alert)
        first = Worker(env, tmp_path, tmp_path / "a.log")
        try:
            owner_a = first.wait_running()
            assert handler.arrived.wait(30), first.output()
            assert message().lease_owner == owner_a
            first.kill()
        finally:
            first.close()

        second = Worker(env, tmp_path, tmp_path / "b.log")
        try:
            second.wait_running()
            wait_until(
                lambda: message().status == outbox.SENT,
                RESUMED_WITHIN,
                "the restarted worker sending the mail",
                step=0.1,
            )
            assert second.terminate() == 0, second.output()
        finally:
            second.close()
    finally:
        controller.stop()
    row = message()
    assert (row.status, row.attempts, row.lease_owner) == (outbox.SENT, 2, None)
    [mailed] = handler.accepted
    assert b"member@example.com" in mailed
