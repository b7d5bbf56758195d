"""Webhooks: deliveries/s per worker to a loopback receiver, and commit-to-delivery latency.

The receiver (``bench/_webhooks_receiver.py``) is a raw asyncio HTTP server in a process of its
own that answers 204 at once and notes wall-clock arrival times. Its own capacity (wrk over kept
connections, as bankhub's worker sends) is measured first as context.

- Throughput: a fresh database (SQLite, then PostgreSQL) with one app, one endpoint at the
  receiver and N events with their pending deliveries queued up front; then one
  ``bankhub worker`` process drains them. Deliveries/s = N / (last ``delivered_at`` in the
  database − the receiver's first arrival), the median of ``ctx.repeats`` fresh databases.
- Latency: a real ``bankhub serve`` (SQLite, embedded worker) with an endpoint at the receiver
  and a ``user_dynamic`` login; ``PUT /v2/login/refresh`` (cool-down 0) is called one at a time,
  each commits one ``transactions.new`` event in the server process. Latency = arrival at the
  receiver − the moment the PUT's answer reached the client (the commit happened before that,
  so this is a lower bound; the note gives the upper bound from the event's own timestamp).
  Then the same scaled out on PostgreSQL: an API-only ``bankhub serve``
  (``BANKHUB_EMBEDDED_WORKER=false``) commits, a separate ``bankhub worker`` (default 1 s poll)
  delivers, woken by the commit's NOTIFY.

Targets (absolute): ≥ 1,000 deliveries/s per worker, median ≤ 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from bench._connect_driver import ConnectUser, new_connect_url, serve
from bench._webhooks_profile import profiled, write_summary
from bench.harness import Context, Result, absolute, free_port, percentile, server

DELIVERY_CONCURRENCY = 64
TARGET_DPS = 1000.0
TARGET_MEDIAN_MS = 100.0
BATCH = 2000


@dataclass
class Receiver:
    url: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset", timeout=10).raise_for_status()

    def stats(self) -> dict[str, float]:
        data: dict[str, float] = httpx.get(f"{self.url}/_stats", timeout=10).json()
        return data

    def arrivals(self) -> list[tuple[float, str, str, str]]:
        data = httpx.get(f"{self.url}/_arrivals", timeout=30).json()
        return [(float(t), str(i), str(k), str(b)) for t, i, k, b in data["arrivals"]]

    def wait_for(self, count: int, timeout: float, alive: subprocess.Popen[bytes] | None) -> float:
        """Wait until ``count`` requests arrived; returns how many did."""
        deadline = time.monotonic() + timeout
        seen = 0.0
        while time.monotonic() < deadline:
            seen = self.stats()["count"]
            if seen >= count or (alive is not None and alive.poll() is not None):
                break
            time.sleep(0.1)
        return seen


@contextmanager
def receiver(ctx: Context) -> Iterator[Receiver]:
    port = free_port()
    command = [ctx.python(), "-m", "bench._webhooks_receiver", str(port)]
    with server(command, ctx.env(), port, path="/_stats") as process:
        yield Receiver(f"http://127.0.0.1:{port}", process)


# --- the receiver's own capacity ------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"login_id":1,"timestamp":1700000000000,"accounts":[{"id":1}],"new":3}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["webhook-id"] = "evt_1"
wrk.headers["bankhub-event"] = "transactions.new"
"""


def receiver_capacity(ctx: Context, peer: Receiver, seconds: float) -> tuple[float, str]:
    """Requests/s the receiver takes over kept connections (as bankhub's worker sends them)."""
    if ctx.wrk:
        script = ctx.work / "webhook.lua"
        script.write_text(WRK_SCRIPT)
        command = [ctx.wrk, "-t1", f"-c{DELIVERY_CONCURRENCY}", f"-d{seconds:g}s"]
        command += ["-s", str(script), f"{peer.url}/hook"]
        done = subprocess.run(  # noqa: S603
            command,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stdout.splitlines():
            if line.startswith("Requests/sec:"):
                peer.reset()
                return float(line.split()[1]), "wrk"
    rate = asyncio.run(_raw_capacity(peer.url, seconds))
    peer.reset()
    return rate, "a raw asyncio client"


async def _raw_capacity(url: str, seconds: float) -> float:
    port = int(url.rsplit(":", 1)[1])
    body = b'{"login_id":1}'
    request = (
        b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"webhook-id: evt_1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    done = 0
    deadline = time.monotonic() + seconds

    async def one() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            done += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(DELIVERY_CONCURRENCY)))
    return done / (time.monotonic() - started)


# --- throughput: one worker drains a queue --------------------------------------------------


def _secret_key(ctx: Context) -> str:
    return ctx.env()["BANKHUB_SECRET_KEY"]


async def _seed(ctx: Context, url: str, hook_url: str, n: int) -> None:
    """One app, one endpoint at ``hook_url``, ``n`` events each with its pending delivery.

    Rows as ``events.record`` writes them (one delivery per event and endpoint), in batches.
    """
    from bankhub.clock import utcnow
    from bankhub.config import Environment, Settings
    from bankhub.events import services as events
    from bankhub.events.models import Event
    from bankhub.hub import Hub
    from bankhub.webhooks import services as webhooks
    from bankhub.webhooks.models import WebhookDelivery
    from bench._fixture import new_app

    data_dir = Path(tempfile.mkdtemp(prefix="webhooks-seed-", dir=ctx.work))
    settings = Settings(
        env=Environment.TEST, data_dir=data_dir, database_url=url, secret_key=_secret_key(ctx)
    )
    hub = Hub.build(settings)
    db = hub.db
    try:
        await hub.ready()
        async with db.transaction() as session:
            app, _ = await new_app(session, hub.hasher, utcnow, "bench")
            # the endpoint's signing secret is sealed under the data keyring, as the API does
            hook = await webhooks.create_endpoint(
                session, hub.keyring, utcnow(), app.id, hook_url, allow_http=True
            )
            app_id, endpoint_id = app.id, hook.endpoint.id
        # the product's own path for one of them
        async with db.transaction() as session:
            await events.record(
                session,
                app_id=app_id,
                type=events.NEW_TRANSACTIONS,
                payload=events.new_transactions_payload(1, utcnow(), [1, 2, 3], 5),
                now=utcnow(),
                login_id=1,
            )
        left = n - 1
        while left > 0:
            size = min(BATCH, left)
            left -= size
            async with db.transaction() as session:
                now = utcnow()
                batch = [
                    Event(
                        app_id=app_id,
                        login_id=1 + i % 50,
                        type=events.NEW_TRANSACTIONS,
                        payload=events.body(
                            events.NEW_TRANSACTIONS,
                            events.new_transactions_payload(1 + i % 50, now, [1, 2, 3], 5),
                        ),
                        created_at=now,
                    )
                    for i in range(size)
                ]
                session.add_all(batch)
                await session.flush()
                session.add_all(
                    WebhookDelivery(
                        app_id=app_id,
                        event_id=event.id,
                        endpoint_id=endpoint_id,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                    for event in batch
                )
    finally:
        await hub.close()


@dataclass
class DrainState:
    delivered: int
    other: int
    last_delivered: float | None


async def _drain_state(url: str) -> DrainState:
    from sqlalchemy import func, select

    from bankhub.db.engine import Database
    from bankhub.webhooks.models import WebhookDelivery

    db = Database(url)
    try:
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    select(
                        WebhookDelivery.status,
                        func.count(),
                        func.max(WebhookDelivery.delivered_at),
                    ).group_by(WebhookDelivery.status)
                )
            ).all()
    finally:
        await db.dispose()
    delivered, other, last = 0, 0, None
    for status, count, latest in rows:
        if status == "delivered":
            delivered = int(count)
            last = _epoch(latest)
        elif status != "pending":
            other += int(count)
    return DrainState(delivered, other, last)


async def _requeue(url: str) -> None:
    """Every delivery pending and due again, as freshly queued (between repeats)."""
    from sqlalchemy import delete, update

    from bankhub.clock import utcnow
    from bankhub.db.engine import Database
    from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery

    db = Database(url)
    try:
        async with db.transaction() as session:
            await session.execute(delete(WebhookAttempt))
            await session.execute(
                update(WebhookDelivery).values(
                    status="pending",
                    attempts=0,
                    next_attempt_at=utcnow(),
                    lease_owner=None,
                    lease_until=None,
                    last_status_code=None,
                    last_error=None,
                    delivered_at=None,
                )
            )
        await db.checkpoint()
    finally:
        await db.dispose()


def _epoch(value: datetime | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's max() hands back the stored text
        from bankhub.clock import as_utc

        value = as_utc(datetime.fromisoformat(value))
    return value.timestamp()


@dataclass
class Drain:
    queued: int
    delivered: int
    seconds: float
    receiver_count: int
    receiver_seconds: float
    startup_seconds: float
    failed: int

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def drain_once(
    ctx: Context, peer: Receiver, url: str, n: int, cap: float, profile: Path | None = None
) -> Drain:
    """Queue all ``n`` deliveries again and let one ``bankhub worker`` deliver them.

    Stops at the last delivery or ``cap`` seconds after the first arrival, whichever is first.
    """
    asyncio.run(_requeue(url))
    peer.reset()
    env = ctx.env(
        BANKHUB_DATABASE_URL=url,
        BANKHUB_DATA_DIR=str(ctx.work / "worker"),
        BANKHUB_DELIVERY_CONCURRENCY=str(DELIVERY_CONCURRENCY),
    )
    started = time.time()
    log_path = ctx.work / "worker.log"
    log = log_path.open("wb")
    worker = subprocess.Popen(  # noqa: S603
        [ctx.python(), "-m", "bankhub", "worker"], env=env, stdout=log, stderr=log
    )
    try:
        if not peer.wait_for(1, timeout=60, alive=worker):
            raise RuntimeError(f"no delivery arrived: {log_path.read_text()[-2000:]}")
        first = peer.stats()["first"]
        # profiled from the first delivery on: start-up (imports) is not the drain
        with _maybe_profiled(worker.pid, profile):
            peer.wait_for(n, timeout=max(0.0, first + cap - time.time()), alive=worker)
            deadline = time.monotonic() + 10
            state = asyncio.run(_drain_state(url))
            while state.delivered + state.other < n and time.monotonic() < deadline:
                if worker.poll() is not None or time.time() > first + cap:
                    break
                time.sleep(0.1)
                state = asyncio.run(_drain_state(url))
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    state = asyncio.run(_drain_state(url))
    stats = peer.stats()
    if not state.delivered or state.last_delivered is None:
        raise RuntimeError(f"the worker delivered nothing: {log_path.read_text()[-2000:]}")
    return Drain(
        queued=n,
        delivered=state.delivered,
        seconds=state.last_delivered - first,
        receiver_count=int(stats["count"]),
        receiver_seconds=stats["last"] - stats["first"],
        startup_seconds=first - started,
        failed=state.other,
    )


@contextmanager
def _maybe_profiled(pid: int, out: Path | None, *, children: bool = False) -> Iterator[None]:
    if out is None:
        yield
        return
    with profiled(pid, out, subprocesses=children):
        yield


def sqlite_url(ctx: Context) -> str:
    path = Path(tempfile.mkdtemp(prefix="webhooks-", dir=ctx.work)) / "bankhub.sqlite3"
    return f"sqlite+aiosqlite:///{path}"


def postgres_url(ctx: Context, server_url: str) -> str:
    """A fresh database on the run's PostgreSQL server."""
    name = f"bench_webhooks_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        import asyncpg  # type: ignore[import-untyped]

        dsn = server_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return server_url.rsplit("/", 1)[0] + "/" + name


def throughput(ctx: Context, peer: Receiver, label: str, url: str, n: int) -> Result:
    from bankhub.db import migrate

    cap = ctx.size(15, 8)
    migrate.upgrade(url)
    seeding = time.monotonic()
    asyncio.run(_seed(ctx, url, f"{peer.url}/hook", n))
    seeding = time.monotonic() - seeding
    load = os.getloadavg()[0]
    drains = sorted((drain_once(ctx, peer, url, n, cap) for _ in range(ctx.repeats)), key=rate)
    median = drains[len(drains) // 2]
    note = (
        f"{n} queued deliveries (seeded in {seeding:.1f} s), one `bankhub worker` "
        f"(BANKHUB_DELIVERY_CONCURRENCY={DELIVERY_CONCURRENCY}) delivered {median.delivered} "
        f"in {median.seconds:.2f} s from the receiver's first arrival to the last delivered_at "
        f"(capped at {cap} s; receiver's own count/span {median.receiver_count} in "
        f"{median.receiver_seconds:.2f} s; worker start-up {median.startup_seconds:.1f} s); "
        f"runs {', '.join(f'{d.rate:.0f}' for d in drains)}/s; {median.failed} failed; "
        f"load average {load:.1f} on {os.cpu_count()} CPUs at the start"
    )
    result = absolute(
        f"webhook deliveries per worker ({label})",
        median.rate,
        "deliveries/s",
        TARGET_DPS,
        lower_is_better=False,
        note=note,
    )
    if not result.met and ctx.profile:
        slug = label.lower()
        raw = ctx.results / f"webhooks-{slug}-profile.raw.txt"
        profiled_drain = drain_once(ctx, peer, url, n, min(cap, 10), profile=raw)
        own, inclusive = write_summary(
            raw, ctx.results / f"webhooks-{slug}-profile.txt", f"bankhub worker draining ({label})"
        )
        ctx.notes.append(
            f"webhooks {label} worker under py-spy ({profiled_drain.rate:.0f}/s; "
            f"bench/results/webhooks-{slug}-profile.txt): own {'; '.join(own[:5])} | "
            f"inclusive {'; '.join(inclusive[:8])}"
        )
    return result


def rate(drain: Drain) -> float:
    return drain.rate


# --- latency: commit in `bankhub serve` to arrival ------------------------------------------


@dataclass
class Latencies:
    lower: list[float]  # arrival − the PUT's answer at the client
    upper: list[float]  # arrival − the event's own timestamp (taken before the commit)
    put_ms: list[float]


@contextmanager
def separate_worker(
    ctx: Context, data_dir: Path, settings: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``bankhub worker`` process beside the API process, once it runs."""
    log_path = ctx.work / "latency-worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(  # noqa: S603
            [ctx.python(), "-m", "bankhub", "worker"],
            env=ctx.env(BANKHUB_DATA_DIR=str(data_dir), **settings),
            stdout=log,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 60
            while b"running" not in log_path.read_bytes():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.05)
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def latency(
    ctx: Context,
    peer: Receiver,
    count: int,
    profile: Path | None,
    *,
    database_url: str | None = None,
) -> Latencies:
    """Embedded on SQLite, or with ``database_url`` scaled out: an API-only serve commits and
    a separate worker delivers."""
    data_dir = Path(tempfile.mkdtemp(prefix="webhooks-serve-", dir=ctx.work))
    settings = {"BANKHUB_REFRESH_COOLDOWN_SECONDS": "0"}
    if database_url is not None:
        settings |= {"BANKHUB_DATABASE_URL": database_url, "BANKHUB_EMBEDDED_WORKER": "false"}
    with contextlib.ExitStack() as stack:
        served = stack.enter_context(
            serve(ctx, data_dir, webhook_url=f"{peer.url}/hook", **settings)
        )
        delivering = served.process
        if database_url is not None:
            delivering = stack.enter_context(separate_worker(ctx, data_dir, settings))
        api = httpx.Client(base_url=served.base, timeout=30)
        user = ConnectUser(served.base)
        try:
            callback = user.connect(
                new_connect_url(api, served, "webhook-latency"), "user_dynamic", poll_every=0.05
            )
        finally:
            user.close()
        secret = str(callback["secret"])
        # the connect's own events (login.status, transactions.new) are delivered first
        peer.wait_for(1, timeout=10, alive=delivering)
        time.sleep(0.5)
        peer.reset()
        windows: list[tuple[float, float]] = []
        with _maybe_profiled(delivering.pid, profile, children=True):
            for _ in range(count):
                sent = time.time()
                response = api.put("/v2/login/refresh", headers=served.headers(secret))
                answered = time.time()
                response.raise_for_status()
                windows.append((sent, answered))
                time.sleep(0.05)
            peer.wait_for(count, timeout=10, alive=delivering)
        api.close()
    lower: list[float] = []
    upper: list[float] = []
    for arrived, _, kind, body in peer.arrivals():
        if kind != "transactions.new":
            continue
        stamped = json.loads(body)["timestamp"] / 1000
        for sent, answered in windows:
            if sent - 0.002 <= stamped <= answered + 0.002:
                lower.append((arrived - answered) * 1000)
                upper.append((arrived - stamped) * 1000)
                break
    if len(lower) < count:
        raise RuntimeError(f"only {len(lower)} of {count} refresh events reached the receiver")
    put_ms = [(answered - sent) * 1000 for sent, answered in windows]
    return Latencies(lower, upper, put_ms)


# --- the benchmark --------------------------------------------------------------------------


def run(ctx: Context) -> list[Result]:
    n = ctx.size(20_000, 500)
    events = ctx.size(200, 20)
    results: list[Result] = []
    with receiver(ctx) as peer:
        capacity, tool = receiver_capacity(ctx, peer, ctx.size(5, 1))
        ctx.notes.append(
            f"webhooks: the loopback receiver alone takes {capacity:.0f} requests/s "
            f"({tool}, {DELIVERY_CONCURRENCY} kept connections)"
        )
        results.append(throughput(ctx, peer, "SQLite", sqlite_url(ctx), n))
        if ctx.postgres_url:
            url = postgres_url(ctx, ctx.postgres_url)
            results.append(throughput(ctx, peer, "PostgreSQL", url, n))
        load = os.getloadavg()[0]
        measured = latency(ctx, peer, events, None)
        median_ms = statistics.median(measured.lower)
        result = absolute(
            "webhook commit-to-delivery median",
            median_ms,
            "ms",
            TARGET_MEDIAN_MS,
            lower_is_better=True,
            note=(
                f"embedded `bankhub serve` (SQLite), {events} `PUT /v2/login/refresh` of a "
                f"user_dynamic login 50 ms apart, each committing one transactions.new event; "
                f"arrival − the PUT's answer at the client: median {median_ms:.1f} ms, p99 "
                f"{percentile(measured.lower, 99):.1f} ms (a lower bound); arrival − the "
                f"event's timestamp (taken before the sync's commit, an upper bound): median "
                f"{statistics.median(measured.upper):.1f} ms, p99 "
                f"{percentile(measured.upper, 99):.1f} ms; the PUT itself took median "
                f"{statistics.median(measured.put_ms):.1f} ms; load average {load:.1f}"
            ),
        )
        results.append(result)
        if not result.met and ctx.profile:
            raw = ctx.results / "webhooks-latency-profile.raw.txt"
            latency(ctx, peer, events, raw)
            own, _ = write_summary(
                raw, ctx.results / "webhooks-latency-profile.txt", "bankhub serve (latency)"
            )
            ctx.notes.append(f"webhooks latency profile, top own frames: {'; '.join(own[:6])}")
        if ctx.postgres_url:
            results.append(scaled_out_latency(ctx, peer, events))
    return results


def scaled_out_latency(ctx: Context, peer: Receiver, events: int) -> Result:
    load = os.getloadavg()[0]
    url = postgres_url(ctx, ctx.postgres_url or "")
    measured = latency(ctx, peer, events, None, database_url=url)
    median_ms = statistics.median(measured.lower)
    return absolute(
        "webhook commit-to-delivery median (scale-out, PostgreSQL)",
        median_ms,
        "ms",
        TARGET_MEDIAN_MS,
        lower_is_better=True,
        note=(
            f"an API-only `bankhub serve` and a separate `bankhub worker` (poll 1 s, woken by "
            f"LISTEN/NOTIFY) on PostgreSQL, {events} `PUT /v2/login/refresh` 50 ms apart, each "
            f"committing one transactions.new event in the API process; arrival − the PUT's "
            f"answer: median {median_ms:.1f} ms, p99 {percentile(measured.lower, 99):.1f} ms "
            f"(lower bound); arrival − the event's timestamp: median "
            f"{statistics.median(measured.upper):.1f} ms, p99 "
            f"{percentile(measured.upper, 99):.1f} ms (upper bound); the PUT took median "
            f"{statistics.median(measured.put_ms):.1f} ms; load average {load:.1f}"
        ),
    )
