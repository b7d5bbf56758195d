"""Scaled out as an operator runs it, with kills: every promise of the embedded mode holds.

One PostgreSQL database deployed as docs/operations.md says (tables owned by one role, bankhub
running as a runtime role under row-level security), one ``redis-server`` for the shared limits,
two API-only ``bankhub serve`` processes and two ``bankhub worker`` processes, a webhook receiver
on loopback in this process (so it outlives every killed process).

``LOGINS`` sandbox logins of ``user_dynamic`` (whose bank shows new transactions on every
refresh) are connected, alternating between the API processes, each end user from an address
of their own. Then, while a reader follows ``GET /v2/event``'s ``next_cursor`` (from whichever
API process is up), partners refresh logins through both API processes and the workers run
scheduled syncs of the same app, so events commit from four processes at once; halfway, one API
process is killed with SIGKILL and started again. Then a worker is SIGKILLed while it holds a
delivery in flight, and started again. Checked:

* the feed: the reader got every event of the app exactly once, in order;
* deliveries: every event was delivered, and the median time from an event's commit (its
  transaction's commit timestamp, which the test server records) to its first arrival at the
  receiver is far below what polling would give (half the 1 s poll interval): the workers are
  woken by the commit. The 100 ms target itself is a figure of ``bench/webhooks.py`` (scale-out),
  measured against the machine rather than asserted by a timed test on a shared one;
* no lease wait: the restarted worker delivers what its predecessor held at once, far inside
  the lease, and the cut attempt is in the log as ``interrupted``;
* a killed API process leaves nothing answering on its port, and starts again on its data dir;
* limits shared: an address's limit of N allows N requests in total across both processes;
* blocks shared and stored: five failures spread over both processes block the address in both
  at once, the block and its audit entry are stored by the runtime role, and after both API
  processes are killed and Redis lost every key, a new process still refuses the address.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import as_utc
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.scale.support import (
    SECRET_KEY,
    Connected,
    HookReceiver,
    Worker,
    connect,
    create_app,
    database,
    deployed_database,
    idle,
    mark_all_due,
    service_ids,
    wait_until,
)
from tests.support.live_server import LiveServer
from tests.support.postgres import PostgresServer
from tests.support.redis import RedisServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LOGINS = 6
#: refreshes per login through the API processes, while the workers sync
REFRESH_ROUNDS = 6
#: how long a partner goes on trying a busy login again (a login whose refresh the API kill cut
#: stays busy until that run's lease expires, longer than this)
BUSY_RETRY_SECONDS = 15.0
LEASE_SECONDS = 60
#: the restarted worker must deliver what its predecessor held well inside the lease
RESUMED_WITHIN = 5.0
PER_ADDRESS = 60
BLOCK_SECONDS = 900
#: the workers' poll interval; a delivery that waited for the poll would arrive ~POLL/2 late
POLL_SECONDS = 1.0
#: woken by the commit (LISTEN/NOTIFY): half of what waiting for the poll would cost
COMMIT_TO_DELIVERY_MS = POLL_SECONDS * 1000 / 4


@dataclass
class Cluster:
    env: dict[str, str]
    tmp: Path
    superuser_url: str
    redis: RedisServer
    receiver: HookReceiver
    creds: dict[str, str]
    servers: list[LiveServer] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started: int = 0

    def start_server(self) -> LiveServer:
        with self._lock:
            self._started += 1
            name = f"server-{self._started}"
        server = LiveServer.start(data_dir=self.tmp / name, env=self.env)
        with self._lock:
            self.servers.append(server)
        return server

    def up(self) -> list[LiveServer]:
        with self._lock:
            return [s for s in self.servers if s.running]

    def start_worker(self) -> Worker:
        worker = Worker(self.env, self.tmp, self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        worker.wait_running()
        return worker

    def db(self) -> Any:
        return database(self.superuser_url)


@pytest.fixture
def cluster(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Cluster]:
    redis_server.flush()
    receiver = HookReceiver().start()
    env = {
        "BANKHUB_SECRET_KEY": SECRET_KEY,
        "BANKHUB_CREATE_DEMO_APP": "false",
        "BANKHUB_EMBEDDED_WORKER": "false",
        "BANKHUB_LEASE_SECONDS": str(LEASE_SECONDS),
        "BANKHUB_WORKER_POLL_SECONDS": str(POLL_SECONDS),
        "BANKHUB_REFRESH_COOLDOWN_SECONDS": "0",
        "BANKHUB_RATE_LIMIT_STORAGE": redis_server.url,
        "BANKHUB_RATE_LIMITS_ENABLED": "true",
        "BANKHUB_RATE_LIMIT_PER_CREDENTIAL": "100000/minute",
        "BANKHUB_RATE_LIMIT_PER_APP": "100000/minute",
        "BANKHUB_RATE_LIMIT_PER_IP": f"{PER_ADDRESS}/minute",
        "BANKHUB_BLOCK_ENABLED": "true",
        "BANKHUB_BLOCK_CACHE_SECONDS": "60",
        "BANKHUB_TRUSTED_PROXIES": "127.0.0.1",
    }
    operator = {**env, "BANKHUB_DATA_DIR": str(tmp_path / "operator")}
    with deployed_database(postgres_server, tmp_path, operator) as deployed:
        env["BANKHUB_DATABASE_URL"] = deployed.runtime_url
        operator |= {
            "BANKHUB_DATABASE_URL": deployed.runtime_url,
            "BANKHUB_MIGRATION_DATABASE_URL": deployed.owner_url,
        }
        creds = create_app(operator, tmp_path, f"{receiver.url}/hook")
        # the workers share one data dir, where each holds an identity slot of its own
        workers_env = {**env, "BANKHUB_DATA_DIR": str(tmp_path / "workers")}
        made = Cluster(env, tmp_path, deployed.superuser_url, redis_server, receiver, creds)
        try:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda _: made.start_server(), range(2)))
            made.env = workers_env
            made.start_worker()
            made.start_worker()
            made.env = env
            yield made
        finally:
            for server in made.servers:
                server.stop()
            for worker in made.workers:
                worker.close()
            receiver.stop()


def partner(cluster: Cluster, login_secret: str | None = None) -> dict[str, str]:
    headers = {
        "client-id": cluster.creds["client_id"],
        "service-secret": cluster.creds["service_secret"],
    }
    if login_secret is not None:
        headers["login-secret"] = login_secret
    return headers


def call(
    cluster: Cluster,
    method: str,
    path: str,
    n: int,
    headers: dict[str, str],
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """One request to the ``n``-th API process that is up (a load balancer's round robin);
    a process killed under the request is left for the next one, as a balancer would."""
    for attempt in range(20):
        up = cluster.up()
        if up:
            server = up[(n + attempt) % len(up)]
            try:
                with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as client:
                    return client.request(method, path, headers=headers, params=params)
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"no API process answered {method} {path}")


class FeedReader(threading.Thread):
    """Follows ``next_cursor`` of ``GET /v2/event`` until told to stop and then read empty."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.ids: list[int] = []
        self.finish = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            cursor, n, empty_after_finish = None, 0, 0
            while empty_after_finish < 2:
                finishing = self.finish.is_set()
                params = {"limit": "25"} | ({"cursor": cursor} if cursor else {})
                page = call(self.cluster, "GET", "/v2/event", n, partner(self.cluster), params)
                n += 1
                assert page.status_code == 200, page.text
                body = page.json()
                self.ids.extend(int(e["id"]) for e in body["data"])
                cursor = body["next_cursor"] or cursor
                if not body["data"]:
                    empty_after_finish += finishing
                    time.sleep(0.02)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.error = exc


def connect_all(cluster: Cluster) -> list[Connected]:
    services = service_ids()

    def one(n: int) -> Connected:
        server = cluster.servers[n % 2]
        return connect(
            server.url,
            cluster.creds,
            services[n % len(services)],
            "user_dynamic",
            f"holds-{n}",
            address=f"192.0.2.{10 + n}",
        )

    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(one, range(LOGINS)))


def kill_and_restart_api(cluster: Cluster, server: LiveServer) -> LiveServer:
    """SIGKILL the ``serve`` process alone: its HTTP worker must not go on answering."""
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)

    def port_closed() -> bool:
        try:
            httpx.get(f"{server.url}/healthz", timeout=1.0)
        except httpx.TransportError:
            return True
        return False

    wait_until(port_closed, 10, "the killed process's HTTP worker stopping with it", step=0.1)
    server.stop()  # closes its log; nothing is left to stop
    restarted = LiveServer.start(data_dir=server.data_dir, env=cluster.env)
    with cluster._lock:
        cluster.servers.append(restarted)
    return restarted


def events_of_app(cluster: Cluster) -> list[tuple[int, datetime]]:
    """Every event's id and the time its transaction committed (``track_commit_timestamp``)."""

    async def work(session: AsyncSession) -> list[tuple[int, datetime]]:
        rows = await session.execute(
            text("select id, pg_xact_commit_timestamp(xmin) from events order by id")
        )
        return [(int(i), as_utc(at)) for i, at in rows.tuples()]

    found: list[tuple[int, datetime]] = cluster.db()(work)
    return found


def write_concurrently(cluster: Cluster, logins: list[Connected]) -> int:
    """Partners' refreshes through both API processes while the workers sync the same logins;
    one API process is killed and restarted halfway. Returns how many refreshes were answered
    200: each of those committed at least one event (the bank shows new transactions on every
    refresh); a refresh refused as busy committed none, the run holding the login did, and is
    tried again after a moment, as a partner would."""
    stop_marking = threading.Event()
    accepted: list[int] = []

    def refresh(n: int) -> None:
        login = logins[n % len(logins)]
        given_up = time.monotonic() + BUSY_RETRY_SECONDS
        done = attempt = 0
        while done < REFRESH_ROUNDS and time.monotonic() < given_up:
            answer = call(
                cluster, "PUT", "/v2/login/refresh", n + attempt, partner(cluster, login.secret)
            )
            attempt += 1
            # a login a worker is syncing right now is said to be busy, in the seed's envelope;
            # the partner tries again in a moment, as the message says
            busy = answer.status_code == 400 and answer.json()["extra"].get("refreshing")
            assert answer.status_code == 200 or busy, answer.text
            if answer.status_code == 200:
                accepted.append(n)
                done += 1
            else:
                time.sleep(0.2)

    def marking() -> None:
        while not stop_marking.wait(0.7):
            mark_all_due(cluster.db())

    marker = threading.Thread(target=marking, daemon=True)
    marker.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            refreshing = [pool.submit(refresh, n) for n in range(len(logins))]
            time.sleep(1.5)
            kill_and_restart_api(cluster, cluster.servers[0])
            for future in refreshing:
                future.result(timeout=300)
    finally:
        stop_marking.set()
        marker.join(timeout=10)
    return len(accepted)


def held_delivery_owner(cluster: Cluster) -> tuple[int, str] | None:
    async def work(session: AsyncSession) -> tuple[int, str] | None:
        row = (
            await session.execute(
                select(WebhookDelivery.id, WebhookDelivery.lease_owner).where(
                    WebhookDelivery.lease_owner.is_not(None),
                    WebhookDelivery.status != "delivered",
                )
            )
        ).first()
        return (int(row[0]), str(row[1])) if row else None

    found: tuple[int, str] | None = cluster.db()(work)
    return found


def delivery_state(cluster: Cluster, delivery_id: int) -> tuple[str, list[str]]:
    async def work(session: AsyncSession) -> tuple[str, list[str]]:
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        outcomes = await session.scalars(
            select(WebhookAttempt.outcome)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id)
        )
        return delivery.status, list(outcomes)

    found: tuple[str, list[str]] = cluster.db()(work)
    return found


def kill_a_worker_holding_a_delivery(cluster: Cluster, login: Connected) -> float:
    """Hold the next delivery at the receiver, SIGKILL the worker sending it, start it again;
    returns the seconds from the restart's banner to the delivery being delivered."""
    receiver = cluster.receiver
    receiver.released.clear()
    receiver.hold = len(receiver.ids()) + 1
    answer = call(cluster, "PUT", "/v2/login/refresh", 0, partner(cluster, login.secret))
    assert answer.status_code == 200, answer.text
    wait_until(lambda: len(receiver.ids()) >= receiver.hold, 20, "a delivery reaching the peer")
    held = held_delivery_owner(cluster)
    assert held is not None
    delivery_id, owner = held
    [holder] = [w for w in cluster.workers if w.proc.poll() is None and owner.startswith(w.owner)]
    holder.kill()
    receiver.released.set()
    restarted = Worker(holder_env(cluster), cluster.tmp, holder.log_path)
    cluster.workers.append(restarted)
    restarted.wait_running()
    banner = time.monotonic()
    wait_until(
        lambda: delivery_state(cluster, delivery_id)[0] == "delivered",
        LEASE_SECONDS,
        "the restarted worker delivering what its predecessor held",
        step=0.05,
    )
    resumed = time.monotonic() - banner
    status, outcomes = delivery_state(cluster, delivery_id)
    assert (status, outcomes[0], outcomes[-1]) == ("delivered", "interrupted", "delivered")
    return resumed


def holder_env(cluster: Cluster) -> dict[str, str]:
    return {**cluster.env, "BANKHUB_DATA_DIR": str(cluster.tmp / "workers")}


def check_limits_and_blocks(cluster: Cluster) -> None:
    headers = partner(cluster)
    # an address's limit of N allows N anonymous requests in all, wherever they are answered
    probe = {"x-forwarded-for": "203.0.113.7"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda n: call(cluster, "GET", "/service.json", n, probe), range(2 * PER_ADDRESS)
            )
        )
    assert Counter(a.status_code for a in answers) == {200: PER_ADDRESS, 429: PER_ADDRESS}
    assert {a.json()["error"] for a in answers if a.status_code == 429} == {"RateLimited"}

    # five failures over both processes block the address in both, stored
    guesser = "198.51.100.60"
    wrong = {**headers, "service-secret": "not-the-secret", "x-forwarded-for": guesser}
    for n in range(5):
        failed = call(cluster, "GET", "/v2/app", n, wrong)
        assert failed.json()["error"] == "CredentialInvalid", failed.text
    for n, _ in enumerate(cluster.up()):
        refused = call(cluster, "GET", "/v2/app", n, {**headers, "x-forwarded-for": guesser})
        assert refused.json()["error"] == "AddressBlocked", refused.text
        assert BLOCK_SECONDS - 10 <= int(refused.headers["retry-after"]) <= BLOCK_SECONDS

    async def stored(session: AsyncSession) -> tuple[list[Any], list[Any]]:
        blocks = await session.execute(
            text("select address, blocked_until - created_at from blocked_addresses")
        )
        audit = await session.execute(
            text("select target_id from audit_log where action = 'address.blocked'")
        )
        return list(blocks.tuples()), list(audit.scalars())

    blocks, audited = cluster.db()(stored)
    assert blocks == [(guesser, timedelta(seconds=BLOCK_SECONDS))]
    assert audited == [guesser]

    # every API process killed, Redis empty: the database still holds the block
    for server in cluster.up():
        server.proc.send_signal(signal.SIGKILL)
        server.stop()
    cluster.redis.flush()
    late = cluster.start_server()
    refused = call(cluster, "GET", "/v2/app", 0, {**headers, "x-forwarded-for": guesser})
    assert refused.json()["error"] == "AddressBlocked"
    served = call(cluster, "GET", "/v2/app", 0, {**headers, "x-forwarded-for": "198.51.100.61"})
    assert served.status_code == 200, served.text
    assert late.running


def test_two_api_processes_and_two_workers_with_kills_keep_every_promise(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    logins = connect_all(cluster)
    assert len({c.login_id for c in logins}) == LOGINS
    wait_until(lambda: idle(cluster.db(), deliveries=True), 60, "the connects' deliveries")

    reader = FeedReader(cluster)
    reader.start()
    written_from = time.time()
    accepted = write_concurrently(cluster, logins)
    wait_until(
        lambda: idle(cluster.db(), deliveries=True),
        120,
        "the workers syncing and delivering everything",
    )
    written_until = time.time()

    resumed = kill_a_worker_holding_a_delivery(cluster, logins[0])
    assert resumed <= RESUMED_WITHIN, f"{resumed:.1f} s: the restart waited on the lease"
    wait_until(
        lambda: idle(cluster.db(), deliveries=True), 60, "everything delivered after the restart"
    )

    reader.finish.set()
    reader.join(timeout=120)
    assert not reader.is_alive()
    assert reader.error is None, reader.error

    stored = events_of_app(cluster)
    # the feed: every committed event exactly once, in order, whoever committed it
    duplicates = [i for i, count in Counter(reader.ids).items() if count > 1]
    assert duplicates == []
    assert reader.ids == [i for i, _ in stored]

    # every event delivered; commit-to-delivery during the concurrent writes
    arrived: dict[int, float] = {}
    for webhook_id, at in zip(cluster.receiver.ids(), cluster.receiver.arrivals, strict=True):
        event_id = int(webhook_id.removeprefix("evt_"))
        arrived.setdefault(event_id, at)
    assert set(arrived) == {i for i, _ in stored}
    latencies = [
        (arrived[i] - at.timestamp()) * 1000
        for i, at in stored
        if written_from <= at.timestamp() <= written_until
    ]
    # at least one event per accepted refresh (a refresh cut by the kill leaves its lease to
    # expire, so its retry is refused as busy and commits nothing)
    assert accepted >= LOGINS
    assert len(latencies) >= accepted, (len(latencies), accepted)
    median = statistics.median(latencies)
    assert median <= COMMIT_TO_DELIVERY_MS, f"commit-to-delivery median {median:.0f} ms"

    check_limits_and_blocks(cluster)
    with capsys.disabled():
        print(
            f"\n[scale-out holds] {len(stored)} events read once each; commit-to-delivery "
            f"median {median:.1f} ms over {len(latencies)}; restarted worker resumed in "
            f"{resumed:.2f} s (lease {LEASE_SECONDS} s); total {time.monotonic() - started:.0f} s"
        )
