"""Crash test: workers SIGKILLed at random points lose nothing and duplicate nothing.

One partner app with a webhook endpoint on a loopback receiver (in this process, so it outlives
every worker), ``LOGINS`` sandbox logins of ``user_dynamic`` (whose bank shows new transactions,
and books the previous refresh's pending item under a new id, on every refresh) made through the
connect page of an API-only ``bankhub serve``. Then, ``KILLS`` times: mark some logins due, start
``bankhub worker`` (lease 2 s, poll 0.1 s), let it run 0.2–1.5 s after its banner (seeded) and
SIGKILL it, so syncs and deliveries are cut at random points (each worker runs under the same
identity, so it releases what the killed one held as it starts). Finally one worker runs until no
login is due, no lease is held and no delivery is pending, and is stopped with SIGTERM.

Invariants checked afterwards, on SQLite and on PostgreSQL:

* no duplicates: ``(account_id, original_id)`` is unique among the stored transactions;
* nothing lost, nothing extra: the sandbox bank is deterministic given the login's connector
  state, and a killed sync never stores that state (it is written with the sync's results, under
  the lease). So the bank's view for the stored state (every account, every transaction, in the
  whole history window) is the clean reference: the stored rows must equal it exactly
  (``original_id``, date, amount, description, status per account);
* fencing: the bank's refresh counter (one ``refresh_dates`` entry per applied refresh) equals
  the number of ``ok`` scheduled ``sync_runs`` of the login: a run is recorded if and only if it
  was applied, and no two applied runs started from the same state;
* the outbox: every applied refresh that inserted rows wrote exactly one ``transactions.new``
  event whose ``new`` is the run's ``inserted`` (after the connect's own event), every event has
  exactly one delivery (one endpoint) and it is ``delivered``, and the receiver saw every
  event's ``webhook-id`` (``evt_<id>``) at least once, and nothing else;
* the recorded ``sync_runs`` of a login never overlap in time.

The sandbox's data depends on today's date (UTC): a run that straddles midnight is skipped.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts import details
from bankhub.accounts.models import Account, Transaction
from bankhub.catalogue import Catalogue, load_catalogue
from bankhub.connectors.base import (
    AccountsCapability,
    ConnectorContext,
    MemoryStateStore,
    TransactionsCapability,
)
from bankhub.connectors.registry import default_registry
from bankhub.events.models import Event
from bankhub.logins.models import Login
from bankhub.sync.models import SyncRun
from bankhub.sync.refresh import RETRYABLE
from bankhub.webhooks.models import WebhookDelivery
from tests.scale.support import (
    SECRET_KEY,
    HookReceiver,
    Store,
    Worker,
    connect,
    create_app,
    database,
    keyring_of,
    login_states,
    overlapping,
    service_ids,
    today_utc,
    wait_until,
    write_catalogue,
)
from tests.support.server_plugin import LiveServerFactory

SEED = 20261120
LOGINS = 24
KILLS = 12
HISTORY_DAYS = 30
SETTLE_SECONDS = 45.0

TxKey = tuple[str, str, str, Decimal, str, str]


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    peer = HookReceiver().start()
    try:
        yield peer
    finally:
        peer.stop()


def mark_due(db: Any, login_ids: list[int]) -> None:
    async def work(session: AsyncSession) -> None:
        await session.execute(
            update(Login).where(Login.id.in_(login_ids)).values(next_sync_at=datetime.now(UTC))
        )

    db(work)


def settled(db: Any) -> bool:
    """No login due or leased, no delivery pending."""

    async def work(session: AsyncSession) -> bool:
        now = datetime.now(UTC)
        due = await session.scalar(
            select(func.count())
            .select_from(Login)
            .where(
                Login.active.is_(True),
                Login.status.in_(RETRYABLE),
                Login.next_sync_at <= now,
            )
        )
        leased = await session.scalar(
            select(func.count()).select_from(Login).where(Login.sync_lease_owner.is_not(None))
        )
        pending = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status == "pending")
        )
        return due == 0 and leased == 0 and pending == 0

    result: bool = db(work)
    return result


def leases_of(db: Any, owner: str) -> int:
    """Sync and delivery leases that ``owner`` (now dead) still holds."""

    async def work(session: AsyncSession) -> int:
        logins = await session.scalar(
            select(func.count())
            .select_from(Login)
            .where(Login.sync_lease_owner.startswith(owner + "/", autoescape=True))
        )
        deliveries = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.lease_owner == owner)
        )
        return int(logins or 0) + int(deliveries or 0)

    held: int = db(work)
    return held


def bank_view(
    catalogue: Catalogue, logins: dict[int, tuple[int, dict[str, Any]]]
) -> dict[int, set[TxKey]]:
    """What the sandbox bank shows each login for its stored connector state: the reference."""

    async def go() -> dict[int, set[TxKey]]:
        registry = default_registry()
        views: dict[int, set[TxKey]] = {}
        async with httpx.AsyncClient() as http:
            for login_id, (service_id, state) in logins.items():
                service = catalogue.get(service_id)
                assert service is not None
                context = ConnectorContext(
                    institution={**service.params, "slug": service.slug, "name": service.name},
                    http=http,
                    state=MemoryStateStore(state),
                    clock=lambda: datetime.now(UTC),
                )
                connector = registry.create(service.connector, context)
                assert isinstance(connector, AccountsCapability)
                assert isinstance(connector, TransactionsCapability)
                view: set[TxKey] = set()
                for account in await connector.fetch_accounts():
                    for t in await connector.fetch_transactions(account, None, None):
                        view.add(
                            (
                                account.bank_id or "",
                                t.bank_id or "",
                                t.booking_date.isoformat(),
                                t.amount,
                                t.description,
                                str(t.status),
                            )
                        )
                views[login_id] = view
        return views

    return asyncio.run(go())


@dataclass
class Snapshot:
    logins: dict[int, tuple[int, dict[str, Any]]]
    stored: dict[int, set[TxKey]]
    duplicates: list[tuple[int, str, int]]
    rows: int
    runs: list[tuple[int, str, str, datetime, datetime, int, str]]
    events: list[tuple[int, int | None, str, dict[str, Any]]]
    deliveries: list[tuple[int, str]]


def snapshot(db: Any, data_dir: Path) -> Snapshot:
    async def work(session: AsyncSession) -> Snapshot:
        logins = await login_states(session)
        keyring = await keyring_of(session, data_dir)
        stored: dict[int, set[TxKey]] = defaultdict(set)
        rows = 0
        seen: Counter[tuple[int, str]] = Counter()
        query = select(Transaction, Account).join(Account, Transaction.account_id == Account.id)
        for r, account in (await session.execute(query)).tuples():
            rows += 1
            opened = details.opened(keyring, r)
            bank_id = details.account_bank_id(keyring, account) or ""
            seen[(r.account_id, opened.original_id)] += 1
            stored[account.login_id].add(
                (
                    bank_id,
                    opened.original_id,
                    r.date.isoformat(),
                    r.amount,
                    opened.description,
                    r.status,
                )
            )
        duplicates = [(a, o, n) for (a, o), n in seen.items() if n > 1]
        runs = [
            (int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), r[6])
            for r in await session.execute(
                select(
                    SyncRun.login_id,
                    SyncRun.kind,
                    SyncRun.outcome,
                    SyncRun.started_at,
                    SyncRun.finished_at,
                    SyncRun.inserted,
                    SyncRun.worker,
                ).order_by(SyncRun.id)
            )
        ]
        events = [
            (int(r[0]), r[1], r[2], dict(r[3]))
            for r in await session.execute(
                select(Event.id, Event.login_id, Event.type, Event.payload).order_by(Event.id)
            )
        ]
        deliveries = [
            (int(r[0]), str(r[1]))
            for r in await session.execute(select(WebhookDelivery.event_id, WebhookDelivery.status))
        ]
        return Snapshot(logins, dict(stored), duplicates, rows, runs, events, deliveries)

    result: Snapshot = db(work)
    return result


def test_killed_workers_lose_and_duplicate_nothing(
    store: Store,
    receiver: HookReceiver,
    live_server: LiveServerFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started, day = time.monotonic(), today_utc()
    rng = random.Random(SEED)
    catalogue_file = write_catalogue(tmp_path / "catalogue", HISTORY_DAYS)
    env = {
        **store.env,
        "BANKHUB_CATALOGUE_FILE": str(catalogue_file),
        "BANKHUB_EMBEDDED_WORKER": "false",
        "BANKHUB_LEASE_SECONDS": "2",
        "BANKHUB_WORKER_POLL_SECONDS": "0.1",
        "BANKHUB_SYNC_CONCURRENCY": "4",
        "BANKHUB_WEBHOOK_TIMEOUT_SECONDS": "5",
    }
    db = database(store.url)
    creds = create_app(env, tmp_path, receiver.url + "/hook")
    receiver.secret = creds["webhook_secret"]

    server = live_server(
        {**env, "BANKHUB_SECRET_KEY": SECRET_KEY, "BANKHUB_CREATE_DEMO_APP": "false"},
        data_dir=store.data_dir,
    )
    services = service_ids()
    with ThreadPoolExecutor(4) as pool:
        made = list(
            pool.map(
                lambda n: connect(
                    server.url, creds, services[n % len(services)], "user_dynamic", f"crash-{n}"
                ),
                range(LOGINS),
            )
        )
    server.stop()  # the connect page is done; only workers touch the database from here on
    login_ids = [c.login_id for c in made]
    assert len(set(login_ids)) == LOGINS
    connected_at = time.monotonic()

    workers: list[Worker] = []
    interrupted = 0
    try:
        for round_no in range(KILLS):
            mark_due(db, rng.sample(login_ids, rng.randint(LOGINS // 3, LOGINS)))
            worker = Worker(env, tmp_path, tmp_path / f"worker-{round_no}.log")
            workers.append(worker)
            owner = worker.wait_running()
            time.sleep(rng.uniform(0.2, 1.5))
            worker.kill()
            interrupted += leases_of(db, owner) > 0
        crashed_at = time.monotonic()

        mark_due(db, login_ids)  # every login gets one clean sync at the end
        final = Worker(env, tmp_path, tmp_path / "worker-final.log")
        workers.append(final)
        final.wait_running()
        settle = wait_until(lambda: settled(db), SETTLE_SECONDS, "the final worker settling")
        assert final.terminate() == 0, final.output()
    finally:
        for worker in workers:
            worker.close()
    if today_utc() != day:
        pytest.skip("the run straddled midnight UTC; the sandbox's data moved with the date")

    assert interrupted > 0, "no kill caught a worker holding a lease"
    snap = snapshot(db, store.data_dir)
    assert snap.duplicates == []

    # nothing lost, nothing extra: the stored rows are exactly the bank's view of the stored state
    reference = bank_view(load_catalogue(catalogue_file), snap.logins)
    for login_id in login_ids:
        missing = reference[login_id] - snap.stored.get(login_id, set())
        extra = snap.stored.get(login_id, set()) - reference[login_id]
        assert not missing, (login_id, "missing", sorted(missing)[:5])
        assert not extra, (login_id, "extra", sorted(extra)[:5])

    runs_of: dict[int, list[tuple[int, str, str, datetime, datetime, int, str]]] = defaultdict(list)
    for run in snap.runs:
        runs_of[run[0]].append(run)
    events_of: dict[int, list[tuple[int, int | None, str, dict[str, Any]]]] = defaultdict(list)
    for event in snap.events:
        assert event[1] is not None
        events_of[event[1]].append(event)
    for login_id in login_ids:
        runs = runs_of[login_id]
        ok = [r for r in runs if r[1] == "scheduled" and r[2] == "ok"]
        assert ok, f"login {login_id} was never synced"
        assert all(r[2] == "ok" for r in runs), runs
        # fencing: one refresh of the bank's state per recorded run, none lost or doubled
        dates = snap.logins[login_id][1].get("refresh_dates", [])
        assert len(dates) == len(ok), (
            f"login {login_id}: {len(dates)} refreshes reached the bank's state but {len(ok)} "
            "runs were recorded as applied: "
            + "; ".join(f"{r[6]} {r[3]:%H:%M:%S.%f}-{r[4]:%H:%M:%S.%f} +{r[5]}" for r in ok)
        )
        assert set(dates) == {day.isoformat()}
        # the runs never overlap in time
        assert overlapping((r[3], r[4], r[6]) for r in runs) == [], login_id
        # the outbox: the connect's event, then one event per applied run that inserted rows
        new_events = [e for e in events_of[login_id] if e[2] == "transactions.new"]
        assert [e[2] for e in events_of[login_id]] == ["transactions.new"] * len(new_events)
        assert Counter(e[3]["new"] for e in new_events[1:]) == Counter(
            r[5] for r in ok if r[5] > 0
        ), (login_id, new_events, ok)

    per_event = Counter(event_id for event_id, _ in snap.deliveries)
    assert set(per_event) == {e[0] for e in snap.events}
    assert set(per_event.values()) == {1}
    assert {status for _, status in snap.deliveries} == {"delivered"}
    seen = Counter(receiver.ids())
    expected = {f"evt_{e[0]}" for e in snap.events}
    assert set(seen) == expected
    unverified = [h.webhook_id for h in receiver.hits if not h.verified]
    assert not unverified, f"signatures that standardwebhooks refused: {unverified}"

    with capsys.disabled():
        print(
            f"\n[{store.kind}] {LOGINS} logins, {KILLS} kills ({interrupted} with leases held), "
            f"{len(snap.runs)} sync runs, {snap.rows} rows, {len(snap.events)} events, "
            f"{sum(seen.values())} webhook requests ({sum(seen.values()) - len(seen)} repeats, "
            f"{receiver.cut} cut short by kills); "
            f"connect {connected_at - started:.1f} s, kills {crashed_at - connected_at:.1f} s, "
            f"settle {settle:.1f} s, total {time.monotonic() - started:.1f} s"
        )
