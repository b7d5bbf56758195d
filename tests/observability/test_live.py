"""What an operator reads of real processes: their log lines and their metrics.

Two API-only ``bankhub serve`` processes and one ``bankhub worker`` share a PostgreSQL database
and one metrics directory, all with JSON logs, as deployed. The partner connects a sandbox login
through the first server, makes calls to both (some refused), a scheduled sync and the webhook
deliveries run in the worker. Then every line each process wrote to standard error must be a
JSON object, request lines must carry the id the answer's ``X-Request-Id`` named (and the app,
once authenticated), the worker's lines the job and the login; and ``/metrics`` of either
server, read with prometheus-client's own parser, must add up what all three processes did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.sync.models import SyncRun
from bankhub.webhooks.models import WebhookDelivery
from tests.scale.support import (
    HookReceiver,
    Worker,
    bankhub_cli,
    child_env,
    connect,
    create_app,
    database,
    service_ids,
    wait_until,
    write_catalogue,
)
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.postgres

METRICS_TOKEN = "metrics-" + "Zq8vN3xW5tR1yU7iO2pL4kJ6hG9fD0sA"
#: customers each server creates, beside the one the connect creates on the first
MADE = (3, 2)
#: a path segment that is an id or a token, where a route template has a parameter
RAW_SEGMENT = re.compile(r"/(\d+|[A-Za-z0-9_-]{20,})(/|$)")


@dataclass
class Cluster:
    servers: list[LiveServer]
    worker: Worker
    receiver: HookReceiver
    creds: dict[str, str]
    app_id: int
    login_id: int
    db: Any
    #: (X-Request-Id, status) of calls to the second server: authenticated, then refused
    authenticated: tuple[str, int]
    refused: tuple[str, int]


def _call(server: LiveServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as client:
        return client.request(method, path, **kwargs)


def _pending(db: Any) -> int:
    async def work(session: AsyncSession) -> int:
        query = select(func.count()).where(WebhookDelivery.status == "pending")
        return int((await session.execute(query)).scalar_one())

    found: int = db(work)
    return found


def _scheduled_runs(db: Any, login_id: int) -> int:
    async def work(session: AsyncSession) -> int:
        query = select(func.count()).where(
            SyncRun.login_id == login_id, SyncRun.kind == "scheduled"
        )
        return int((await session.execute(query)).scalar_one())

    found: int = db(work)
    return found


@pytest.fixture(scope="module")
def cluster(
    postgres_module_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("observed")
    env = {
        "BANKHUB_DATABASE_URL": postgres_module_url,
        "BANKHUB_EMBEDDED_WORKER": "false",
        "BANKHUB_LOG_FORMAT": "json",
        "BANKHUB_METRICS_DIR": str(tmp / "metrics"),
        "BANKHUB_METRICS_TOKEN": METRICS_TOKEN,
        "BANKHUB_WORKER_POLL_SECONDS": "0.2",
        "BANKHUB_DATA_DIR": str(tmp / "operator"),
        # a short history: the connect's first fetch and the sync take a moment, not seconds
        "BANKHUB_CATALOGUE_FILE": str(write_catalogue(tmp / "catalogue", 30)),
    }
    bankhub_cli(["migrate"], env, tmp)
    receiver = HookReceiver().start()
    servers: list[LiveServer] = []
    worker: Worker | None = None
    try:
        creds = create_app(env, tmp, receiver.url + "/hook")
        receiver.secret = creds["webhook_secret"]
        # at debug, so that a delivered attempt is logged too (at info only one that failed is)
        worker_env = {**env, "BANKHUB_LOG_LEVEL": "debug"}
        worker = Worker(worker_env, tmp, tmp / "worker.out", err_path=tmp / "worker.err")

        def start(name: str) -> LiveServer:
            return LiveServer.start(
                data_dir=tmp / name,
                env={**child_env(env), "BANKHUB_DATA_DIR": str(tmp / name)},
                separate_stderr=True,
            )

        with ThreadPoolExecutor(2) as pool:  # side by side: each start takes a while
            servers.extend(pool.map(start, ("server-0", "server-1")))
        worker.wait_running()
        db = database(postgres_module_url)

        connected = connect(servers[0].url, creds, service_ids()[0], "user_good", "observed")
        keys = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
        for server, count in zip(servers, MADE, strict=True):
            for n in range(count):
                made = _call(
                    server, "POST", "/v2/customer", json={"identifier": f"{server.port}-{n}"},
                    headers=keys,
                )  # fmt: skip
                assert made.status_code == 200, made.text
        ok = _call(servers[1], "POST", "/v2/customer", json={"identifier": "x"}, headers=keys)
        wrong = {**keys, "service-secret": "not-the-secret"}
        refused = _call(servers[1], "GET", "/v2/account", headers=wrong)
        assert ok.status_code == 200
        assert refused.status_code >= 400

        async def due_now(session: AsyncSession) -> int:
            await session.execute(
                update(Login)
                .where(Login.id == connected.login_id)
                .values(next_sync_at=datetime.now(UTC))
            )
            return int(
                (
                    await session.execute(select(App.id).where(App.client_id == creds["client_id"]))
                ).scalar_one()
            )

        app_id = db(due_now)
        wait_until(
            lambda: _scheduled_runs(db, connected.login_id) == 1,
            30,
            "the worker's scheduled sync",
            step=0.1,
        )
        wait_until(
            lambda: _pending(db) == 0 and bool(receiver.hits), 30, "the deliveries", step=0.1
        )
        yield Cluster(
            servers,
            worker,
            receiver,
            creds,
            app_id,
            connected.login_id,
            db,
            (ok.headers["x-request-id"], ok.status_code),
            (refused.headers["x-request-id"], refused.status_code),
        )
    finally:
        if worker is not None:
            worker.close()
        for server in servers:
            server.stop()
        receiver.stop()


def json_lines(text: str, who: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, f"{who} wrote nothing to standard error"
    parsed: list[dict[str, Any]] = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{who}: a line that is not JSON: {line!r}")
        assert isinstance(parsed[-1], dict), line
        assert {"event", "level", "timestamp", "logger"} <= parsed[-1].keys(), line
    return parsed


def test_every_line_is_json_and_a_request_line_names_its_request_and_app(
    cluster: Cluster,
) -> None:
    """test_every_line_is_json_and_a_request_line_names_its_request_and_app — S23: each
    process's standard error is JSON lines only (granian's start-up included); the access line
    of an authenticated call carries the X-Request-Id its answer named and the app's id, the
    refused call's line its id and no app; no issued secret and no connect link's token
    appears in any line."""
    first, second = cluster.servers
    for server in cluster.servers:
        json_lines(server.stderr_text(), f"serve on {server.port}")
    lines = json_lines(second.stderr_text(), "the second serve")
    assert any(line["logger"] == "_granian" for line in lines)
    access = {line["request_id"]: line for line in lines if line["logger"] == "bankhub.access"}
    request_id, status = cluster.authenticated
    line = access[request_id]
    assert (line["app_id"], line["status"], line["route"]) == (
        cluster.app_id,
        status,
        "/v2/customer",
    )
    request_id, status = cluster.refused
    line = access[request_id]
    assert line["status"] == status
    assert "app_id" not in line
    # the other server's lines never carry this server's request ids
    assert request_id not in first.stderr_text()
    # the connect link's token is its holder's key to the connect page
    opened = [
        line["event"]
        for line in json_lines(first.stderr_text(), "the first serve")
        if line["event"].startswith("GET /v2/connect/term/")
    ]
    assert opened == ["GET /v2/connect/term/[REDACTED] 303"]
    everything = "".join(s.stderr_text() for s in cluster.servers) + cluster.worker.errors()
    for secret in ("service_secret", "app_secret", "webhook_secret"):
        assert cluster.creds[secret] not in everything, secret


def test_a_job_line_of_the_worker_names_the_job_and_the_login(cluster: Cluster) -> None:
    """test_a_job_line_of_the_worker_names_the_job_and_the_login — the worker's standard error
    is JSON lines (at ``debug``, libraries' lines included); its scheduled sync's line carries
    ``job: sync`` and the login's id, and each delivery attempt's line ``job: delivery`` with the
    delivery's id."""
    lines = json_lines(cluster.worker.errors(), "the worker")
    syncs = [line for line in lines if line.get("job") == "sync"]
    assert syncs, lines
    assert {line["login_id"] for line in syncs} == {cluster.login_id}
    assert any(line["event"] == f"sync of login {cluster.login_id}: ok" for line in syncs)
    deliveries = [line for line in lines if line.get("job") == "delivery"]
    assert deliveries
    assert all(isinstance(line["delivery_id"], int) for line in deliveries)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: LiveServer) -> Samples:
    answer = _call(server, "GET", "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_add_up_across_two_servers_and_a_worker(cluster: Cluster) -> None:
    """test_metrics_add_up_across_two_servers_and_a_worker — /metrics of either server, parsed
    by prometheus-client's parser, counts the calls both servers answered (by route template
    and status), the connect funnel of the first, the worker's scheduled sync (by connector and
    outcome) and its delivery attempts (as many as the receiver got); the queue depth and the
    due-sync lag come from the database; nothing is labelled with a raw path."""
    first, second = (scrape(server) for server in cluster.servers)
    request = "bankhub_http_request_duration_seconds_count"
    created = {"method": "POST", "route": "/v2/customer", "status": "200"}
    # the connect's customer, the ones made on each server, and the second server's last one
    expected = 1 + sum(MADE) + 1
    for samples in (first, second):
        assert value(samples, request, **created) == expected
        refused = {"method": "GET", "route": "/v2/account", "status": str(cluster.refused[1])}
        assert value(samples, request, **refused) == 1
        for stage in ("opened", "credentials_submitted", "succeeded"):
            assert value(samples, "bankhub_connect_total", stage=stage) == 1, stage
        assert value(samples, "bankhub_connect_total", stage="failed") == 0
        synced = {"connector": "sandbox", "kind": "scheduled", "outcome": "ok"}
        assert value(samples, "bankhub_sync_duration_seconds_count", **synced) == 1
        assert value(samples, "bankhub_sync_duration_seconds_sum", **synced) > 0
        delivered = value(samples, "bankhub_webhook_attempts_total", outcome="delivered")
        assert delivered == len(cluster.receiver.hits) > 0
        assert value(samples, "bankhub_webhook_queue_depth") == 0
        assert value(samples, "bankhub_syncs_due") == 0
        assert value(samples, "bankhub_sync_due_lag_seconds") == 0
        routes = {dict(labels).get("route") or "" for (_, labels) in samples}
        raw = [route for route in routes if RAW_SEGMENT.search(route)]
        assert raw == [], raw
