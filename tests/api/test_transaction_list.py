"""GET /v2/transaction: the whole range without page/per_page (streamed in slices, bounded
memory), pages when asked for, and pending items marked in ``meta``."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session

from bankhub.accounts import transaction_routes as routes
from bankhub.accounts.models import Transaction
from bankhub.audit import services as audit
from bankhub.connectors.base import TransactionRecord
from bankhub.db import tenancy
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.support.served_login import served_login
from tests.support.server_plugin import LiveServerFactory


async def _get(h: Harness, secret: str, **params: str) -> httpx.Response:
    answer = await h.client.get(
        "/v2/transaction", params=params, headers=h.headers(login_secret=secret)
    )
    assert answer.status_code == 200, answer.text
    return answer


async def _paged(h: Harness, secret: str, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = await _get(h, secret, page=str(page), per_page="1000", **params)
        rows += answer.json()["data"]
        if "link" not in answer.headers:
            return rows
        page += 1


@pytest.mark.parametrize("slice_size", [1000, 97])
async def test_without_paging_the_whole_range_is_answered(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, slice_size: int
) -> None:
    """No `page`/`per_page`: every row of the range in one seed-shaped document (no Link), the
    same rows in the same order as all the pages together; pages stay as they were."""
    h = harness
    monkeypatch.setattr(routes, "STREAM_SLICE", slice_size)
    payload = await connect(h, "user_good")
    secret = payload["secret"]
    whole = await _get(h, secret)
    assert "link" not in whole.headers
    body = whole.json()
    assert list(body) == ["data", "version"]
    assert body["version"] == "v2"
    paged = await _paged(h, secret)
    assert len(paged) > 1000
    assert body["data"] == paged
    assert len({r["id"] for r in paged}) == len(paged)

    first = await _get(h, secret, per_page="1000")
    assert len(first.json()["data"]) == 1000
    assert 'rel="next"' in first.headers["link"]

    days = sorted({r["date"] for r in paged})
    low, high = days[len(days) // 4], days[3 * len(days) // 4]
    ranged = (await _get(h, secret, from_date=low, to_date=high)).json()["data"]
    assert ranged == [r for r in paged if low <= r["date"] <= high]
    accounts = {r["id"]: r for r in paged}
    async with h.hub.db.transaction() as session:
        account_id = (
            await session.execute(
                select(Transaction.account_id).where(Transaction.id == paged[0]["id"])
            )
        ).scalar_one()
        ids = set(
            (
                await session.execute(
                    select(Transaction.id).where(Transaction.account_id == account_id)
                )
            ).scalars()
        )
    one = (await _get(h, secret, account_id=str(account_id))).json()["data"]
    assert one == [accounts[i] for i in (r["id"] for r in paged) if i in ids]


async def test_pages_of_transactions_are_read_without_the_orm(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page and the streamed slices are plain rows executed on the session's connection:
    no statement on ``transactions`` goes through the ORM's execution (its row loading costs
    more than a 100-row page's query), paged or streamed, and the answer is the same."""
    h = harness
    monkeypatch.setattr(routes, "STREAM_SLICE", 97)
    payload = await connect(h, "user_good")
    secret = payload["secret"]
    through_orm: list[str] = []

    def seen(state: ORMExecuteState) -> None:
        sql = str(state.statement)
        if "FROM transactions" in sql:
            through_orm.append(sql)

    event.listen(Session, "do_orm_execute", seen)
    try:
        streamed = (await _get(h, secret)).json()["data"]
        paged = await _paged(h, secret)
    finally:
        event.remove(Session, "do_orm_execute", seen)
    assert len(streamed) > 97
    assert streamed == paged
    assert [q for q in through_orm if "count(" not in q] == []


async def test_the_streamed_read_is_audited_once_with_its_row_count(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    monkeypatch.setattr(routes, "STREAM_SLICE", 100)
    payload = await connect(h, "user_good")
    answer = await _get(h, payload["secret"])
    rows = len(answer.json()["data"])
    async with h.hub.db.transaction() as session:
        with tenancy.everything():
            found = await audit.search(
                session, request_id=answer.headers["x-request-id"], actions=[audit.READ]
            )
    assert [e.detail["rows"] for e in found] == [rows]


async def test_pending_items_are_marked_and_the_booked_item_names_them(
    harness: Harness,
) -> None:
    """`meta.status: "pending"` on an item not booked yet; once it books under a new id, the
    booked item carries `meta.pending_transaction_id` and the pending id is gone. Booked
    items otherwise keep the bank's meta as it was (null stays null)."""
    h = harness
    payload = await connect(h, "user_dynamic")
    secret = payload["secret"]
    rows = (await _get(h, secret)).json()["data"]
    async with h.hub.db.transaction() as session:
        status = dict(
            (await session.execute(select(Transaction.id, Transaction.status))).tuples().all()
        )
    pending = {r["id"] for r in rows if status[r["id"]] == "pending"}
    assert pending
    for row in rows:
        marked = (row["meta"] or {}).get("status")
        assert marked == ("pending" if row["id"] in pending else None)
    assert any(r["meta"] is None for r in rows if r["id"] not in pending)
    linked: list[dict[str, Any]] = []
    for _ in range(6):
        h.clock.advance(hours=7)
        refreshed = await h.client.put(
            "/v2/login/refresh", headers=h.headers(login_secret=secret), json={}
        )
        assert refreshed.status_code == 200, refreshed.text
        rows = (await _get(h, secret)).json()["data"]
        linked = [r for r in rows if "pending_transaction_id" in (r["meta"] or {})]
        if linked:
            break
        # the bank adds pending items on each refresh too
        pending |= {r["id"] for r in rows if (r["meta"] or {}).get("status") == "pending"}
    assert linked, "a pending item of user_dynamic books within six refreshes"
    ids = {r["id"] for r in rows}
    for row in linked:
        was = row["meta"]["pending_transaction_id"]
        assert was in pending
        assert was not in ids
        assert row["meta"].get("status") is None


# --- bounded memory -------------------------------------------------------------------------------

BIG = 100_000
SECRET_KEY = "stream-test-pepper-" + "s" * 40


def _big_records() -> list[TransactionRecord]:
    """BIG transactions over five years."""
    start = date(2021, 1, 1)
    return [
        TransactionRecord(
            bank_id=f"big-{n}",
            booking_date=start + timedelta(days=n * 5 * 365 // BIG),
            amount=Decimal(-(n % 9973) - 1) / 100,
            currency="EUR",
            description=f"CARD PAYMENT MERCHANT {n % 500} BERLIN REF {n:08d}",
            merchant=f"MERCHANT {n % 500}",
            meta={"mcc": str(5000 + n % 900)} if n % 3 == 0 else None,
        )
        for n in range(BIG)
    ]


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (the server and its workers)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        pending += [int(c) for c in children]
    return total


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_whole_range_is_streamed_with_bounded_server_memory(
    live_server: LiveServerFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    database: str,
) -> None:
    """100,000 rows in one answer: the server's memory grows by at most 50 MB meanwhile, on
    SQLite and on PostgreSQL (as deployed: the runtime role under row-level security)."""
    served = served_login(
        live_server,
        request,
        tmp_path / "big",
        database,
        secret_key=SECRET_KEY,
        name="big",
        records=_big_records(),
    )
    server, headers = served.server, served.headers
    url = f"{server.url}/v2/transaction"
    with httpx.Client(timeout=120) as client:
        warm = client.get(url, params={"per_page": "1000"}, headers=headers)
        assert warm.status_code == 200, warm.text
        pid = server.proc.pid
        before = _tree_rss_kb(pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss_kb(pid))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            body = bytearray()
            with client.stream("GET", url, headers=headers) as answer:
                assert answer.status_code == 200
                assert "link" not in answer.headers
                for chunk in answer.iter_bytes():
                    body += chunk
        finally:
            done.set()
            sampler.join()
    rows = json.loads(body)["data"]
    assert len(rows) == BIG
    assert len({r["id"] for r in rows}) == BIG
    assert rows[0]["date"] >= rows[-1]["date"]
    growth_mb = (peak - before) / 1024
    print(f"server RSS {before / 1024:.1f} MB before, peak {peak / 1024:.1f} MB")
    assert growth_mb <= 50, f"the server grew by {growth_mb:.1f} MB"
