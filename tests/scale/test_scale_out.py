"""Scale-out on one PostgreSQL server: two API processes, two workers, a few hundred logins.

``bankhub migrate`` once; two ``bankhub serve`` processes with ``BANKHUB_EMBEDDED_WORKER=false``
and two ``bankhub worker`` processes, all on the same database and secret key. ``LOGINS`` sandbox
logins (``user_good`` over every built-in bank, ``history_days`` 14 so each has few rows) are
made through the connect page over HTTP, alternating between the two API processes; each
connect flow stays on the process that opened it (a connect session lives in that process's
memory, as docs/operations.md says). Then every login is marked due once and the workers run
until no login is due and no lease is held.

Checked:

* every login was synced exactly once by a scheduled run (marked due once, refreshed once), and
  every run ended ``ok``;
* no login was ever synced by two workers at once: the ``[started_at, finished_at]`` intervals
  of a login's ``sync_runs`` never overlap;
* both workers did some of the work (the ``worker`` column);
* the results equal the embedded mode's: the same (service, username) pairs connected and synced
  by one ``bankhub serve`` on SQLite with its embedded worker and the same catalogue give, per
  login, the same set of (account name, currency, balance) and the same multiset of (date,
  amount, description) of transactions.

The sandbox's data depends on today's date (UTC): both runs happen on the same day, so a run
that straddles midnight is skipped.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts import details
from bankhub.accounts.models import Account, Transaction
from bankhub.sync.models import SyncRun
from tests.scale.support import (
    SECRET_KEY,
    Connected,
    Worker,
    bankhub_cli,
    connect,
    create_app,
    database,
    idle,
    keyring_of,
    login_states,
    mark_all_due,
    overlapping,
    service_ids,
    sqlite_url,
    today_utc,
    wait_until,
    write_catalogue,
)
from tests.support.server_plugin import LiveServerFactory

LOGINS = 200
USERNAME = "user_good"
HISTORY_DAYS = 14
CONNECT_THREADS = 8
SETTLE_SECONDS = 60.0

#: (service id, username) → (accounts, transactions)
Results = dict[tuple[int, str], tuple[frozenset[tuple[str, str, Decimal]], Counter[Any]]]


@dataclass(frozen=True)
class Run:
    login_id: int
    kind: str
    worker: str
    outcome: str
    started_at: datetime
    finished_at: datetime


def connect_all(
    urls: list[str], creds: dict[str, str], pairs: list[tuple[int, str]], prefix: str
) -> list[Connected]:
    """Connect every (service, username), login n on ``urls[n % len(urls)]`` from start to end."""
    with ThreadPoolExecutor(CONNECT_THREADS) as pool:
        return list(
            pool.map(
                lambda n: connect(
                    urls[n % len(urls)], creds, pairs[n][0], pairs[n][1], f"{prefix}-{n}"
                ),
                range(len(pairs)),
            )
        )


def sync_runs(db: Any) -> list[Run]:
    async def work(session: AsyncSession) -> list[Run]:
        rows = await session.execute(
            select(
                SyncRun.login_id,
                SyncRun.kind,
                SyncRun.worker,
                SyncRun.outcome,
                SyncRun.started_at,
                SyncRun.finished_at,
            ).order_by(SyncRun.id)
        )
        return [Run(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    result: list[Run] = db(work)
    return result


def results(db: Any, data_dir: Path) -> dict[int, tuple[tuple[int, str], Any, Counter[Any]]]:
    """Per login: its (service, username), its accounts and its transactions."""

    async def work(session: AsyncSession) -> dict[int, tuple[tuple[int, str], Any, Counter[Any]]]:
        who = {
            login_id: (service_id, str(state.get("username")))
            for login_id, (service_id, state) in (await login_states(session)).items()
        }
        accounts: dict[int, set[tuple[str, str, Decimal]]] = defaultdict(set)
        for r in await session.execute(
            select(Account.login_id, Account.name, Account.currency, Account.balance)
        ):
            accounts[int(r[0])].add((r[1], r[2], r[3].normalize()))
        transactions: dict[int, Counter[Any]] = defaultdict(Counter)
        keyring = await keyring_of(session, data_dir)
        query = select(Account.login_id, Transaction).join(
            Account, Transaction.account_id == Account.id
        )
        for login_id, t in (await session.execute(query)).tuples():
            description = details.opened(keyring, t).description
            transactions[login_id][(t.date.isoformat(), t.amount.normalize(), description)] += 1
        return {
            login_id: (pair, frozenset(accounts[login_id]), transactions[login_id])
            for login_id, pair in who.items()
        }

    result: dict[int, tuple[tuple[int, str], Any, Counter[Any]]] = db(work)
    return result


def embedded_results(
    live_server: LiveServerFactory, tmp_path: Path, catalogue: Path, pairs: set[tuple[int, str]]
) -> Results:
    """The same (service, username) pairs through ``bankhub serve`` alone, on SQLite."""
    data_dir = tmp_path / "embedded"
    data_dir.mkdir()
    env = {
        "BANKHUB_DATA_DIR": str(data_dir),
        "BANKHUB_CATALOGUE_FILE": str(catalogue),
        "BANKHUB_WORKER_POLL_SECONDS": "0.2",
    }
    creds = create_app(env, tmp_path, "http://127.0.0.1:9/unused")
    server = live_server(
        {**env, "BANKHUB_SECRET_KEY": SECRET_KEY, "BANKHUB_CREATE_DEMO_APP": "false"},
        data_dir=data_dir,
    )
    made = connect_all([server.url], creds, sorted(pairs), "embedded")
    db = database(sqlite_url(data_dir))
    mark_all_due(db)

    def synced() -> bool:
        done = {run.login_id for run in sync_runs(db) if run.kind == "scheduled"}
        return done >= {c.login_id for c in made} and idle(db)

    wait_until(synced, SETTLE_SECONDS, "the embedded worker syncing every login")
    server.stop()
    out: Results = {}
    for pair, accounts, transactions in results(db, data_dir).values():
        out[pair] = (accounts, transactions)
    return out


def test_two_workers_and_two_api_processes_on_one_postgres(
    postgres_url: str,
    live_server: LiveServerFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started, day = time.monotonic(), today_utc()
    catalogue = write_catalogue(tmp_path / "catalogue", HISTORY_DAYS)
    env = {
        "BANKHUB_DATABASE_URL": postgres_url,
        "BANKHUB_CATALOGUE_FILE": str(catalogue),
        "BANKHUB_EMBEDDED_WORKER": "false",
        "BANKHUB_WORKER_POLL_SECONDS": "0.2",
        "BANKHUB_LEASE_SECONDS": "30",
        "BANKHUB_DATA_DIR": str(tmp_path / "data"),
    }
    bankhub_cli(["migrate"], env, tmp_path)
    creds = create_app(env, tmp_path, "http://127.0.0.1:9/unused")
    server_env = {**env, "BANKHUB_SECRET_KEY": SECRET_KEY, "BANKHUB_CREATE_DEMO_APP": "false"}
    servers = [live_server(server_env), live_server(server_env)]
    services = service_ids()
    pairs = [(services[n % len(services)], USERNAME) for n in range(LOGINS)]
    made = connect_all([s.url for s in servers], creds, pairs, "scale")
    for server in servers:
        server.stop()
    connected = time.monotonic()
    assert len({c.login_id for c in made}) == LOGINS

    db = database(postgres_url)
    workers = [Worker(env, tmp_path, tmp_path / f"worker-{n}.log") for n in range(2)]
    try:
        owners = {w.wait_running() for w in workers}
        assert len(owners) == 2
        mark_all_due(db)
        settle = wait_until(lambda: idle(db), SETTLE_SECONDS, "two workers syncing every login")
        codes = [w.terminate() for w in workers]
        assert codes == [0, 0], [w.output() for w in workers]
    finally:
        for worker in workers:
            worker.close()
    synced = time.monotonic()

    runs = sync_runs(db)
    by_login: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_login[run.login_id].append(run)
    for c in made:
        scheduled = [r for r in by_login[c.login_id] if r.kind == "scheduled"]
        assert len(scheduled) == 1, (
            f"login {c.login_id} synced {len(scheduled)} times: "
            + "; ".join(
                f"{r.worker} {r.started_at:%H:%M:%S.%f}-{r.finished_at:%H:%M:%S.%f}"
                for r in scheduled
            )
        )
        assert [r.outcome for r in scheduled] == ["ok"]
    overlaps = {
        login_id: problems
        for login_id, login_runs in by_login.items()
        if (problems := overlapping((r.started_at, r.finished_at, r.worker) for r in login_runs))
    }
    assert overlaps == {}
    per_worker = Counter(r.worker for r in runs if r.kind == "scheduled")
    assert set(per_worker) == owners, per_worker

    scaled = results(db, tmp_path / "data")
    embedded = embedded_results(live_server, tmp_path, catalogue, set(pairs))
    if today_utc() != day:
        pytest.skip("the run straddled midnight UTC; the sandbox's data moved with the date")
    assert len(scaled) == LOGINS
    assert {pair for pair, _, _ in scaled.values()} == set(pairs)
    for login_id, (pair, accounts, transactions) in scaled.items():
        reference_accounts, reference_transactions = embedded[pair]
        assert accounts == reference_accounts, (login_id, pair)
        assert transactions == reference_transactions, (login_id, pair)

    with capsys.disabled():
        print(
            f"\n[scale-out] {LOGINS} logins over 2 API processes in {connected - started:.1f} s; "
            f"2 workers synced them in {settle:.1f} s ({dict(per_worker)}); "
            f"{sum(t.total() for _, _, t in scaled.values())} transactions; "
            f"embedded comparison {time.monotonic() - synced:.1f} s; "
            f"total {time.monotonic() - started:.1f} s"
        )
