"""The operator's endpoints in process: /readyz's checks, who may read /metrics, what its
labels and database gauges say, and the shared metrics directory's cleaning."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.app import create_app
from bankhub.clock import as_utc
from bankhub.config import Environment
from bankhub.db import migrate, tenancy
from bankhub.hub import Hub
from bankhub.logins.models import Login
from bankhub.observability import metrics
from bankhub.partners.models import App
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookDelivery
from tests.api.connect_client import connect
from tests.conftest import BASE_URL, FakeClock, Harness, make_settings
from tests.support.postgres import free_port

TOKEN = "Pm4vX8qR2tY6uI0oK3jH7gF1dS5aZ9xC"
HTTPS = "https://testserver.local"
#: production settings need a key-encryption key of their own; the proxy says https (S26)
PRODUCTION: dict[str, Any] = {
    "env": Environment.PRODUCTION,
    "kek": "q" * 43,
    "trusted_proxies": "127.0.0.1",
    "public_url": HTTPS,
}
VIA_HTTPS = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parsed(body: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


# --- readiness --------------------------------------------------------------------------------


async def test_ready_when_the_database_the_schema_and_the_keys_are(harness: Harness) -> None:
    """test_ready_when_the_database_the_schema_and_the_keys_are — /readyz answers 200 with each
    check ok, plain and uncached."""
    answer = await harness.client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "keys": "ok"},
    }
    assert answer.headers["cache-control"] == "no-store"


async def test_not_ready_while_the_migrations_are_behind(harness: Harness) -> None:
    """test_not_ready_while_the_migrations_are_behind — a schema one revision behind this
    version is 503 naming ``migrations`` (and nothing else about it); liveness stays 200."""
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    newest = script.get_current_head()
    assert newest is not None
    head = script.get_revision(newest)
    assert head is not None
    previous = head.down_revision
    assert isinstance(previous, str)
    async with harness.hub.db.engine.begin() as connection:
        await connection.execute(
            text("update alembic_version set version_num = :previous"), {"previous": previous}
        )
    answer = await harness.client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "migrations": "failed", "keys": "ok"},
    }
    assert previous not in answer.text
    assert (await harness.client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_not_ready_while_the_database_cannot_be_reached(
    dialect: str, tmp_path: Path, clock: FakeClock
) -> None:
    """test_not_ready_while_the_database_cannot_be_reached — a process whose database does not
    answer (a PostgreSQL port nobody listens on, a SQLite file in a directory that is gone) is
    503 naming every check, within the checks' time limit; /healthz still answers 200. The
    failed connects leave no database thread behind to die once the event loop has closed."""
    threads_before = set(threading.enumerate())
    if dialect == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'bankhub.sqlite3'}"
    else:
        url = f"postgresql+asyncpg://bankhub@127.0.0.1:{free_port('127.0.0.1')}/bankhub"
    hub = Hub.build(make_settings(tmp_path, url), clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(hub))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            assert (await client.get("/healthz")).status_code == 200
            answer = await client.get("/readyz")
    finally:
        await hub.close()
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "checks": {"database": "failed", "migrations": "failed", "keys": "failed"},
    }
    # (the event loop's own executor threads stop with the loop)
    left = [t.name for t in threading.enumerate() if t not in threads_before]
    assert [name for name in left if not name.startswith("asyncio_")] == []


# --- who reads /metrics -------------------------------------------------------------------------


@pytest.mark.parametrize("harness", [{"metrics_token": TOKEN}], indirect=True)
async def test_metrics_need_the_configured_bearer_token(harness: Harness) -> None:
    """test_metrics_need_the_configured_bearer_token — S32: with BANKHUB_METRICS_TOKEN set,
    /metrics without it or with another is 401 InvalidToken in the seed's envelope; with it,
    Prometheus text."""
    for headers in ({}, {"authorization": "Bearer " + "x" * 32}, {"authorization": TOKEN}):
        refused = await harness.client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["error"] == "InvalidToken"
        assert "bearer" in refused.headers["www-authenticate"].lower()
        assert "bankhub_" not in refused.text
    read = await harness.client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert read.status_code == 200
    assert read.headers["content-type"].startswith("text/plain")
    assert ("bankhub_webhook_queue_depth", frozenset()) in parsed(read.text)


@pytest.mark.parametrize("harness", [PRODUCTION], indirect=True)
async def test_metrics_are_absent_in_production_without_a_token(harness: Harness) -> None:
    """test_metrics_are_absent_in_production_without_a_token — S32: outside dev, /metrics
    without a configured token answers 404 NotFound like a path that does not exist."""
    answer = await harness.client.get("/metrics", headers=VIA_HTTPS)
    assert answer.status_code == 404
    assert answer.json()["error"] == "NotFound"
    assert "bankhub_" not in answer.text


@pytest.mark.parametrize("harness", [{**PRODUCTION, "metrics_token": TOKEN}], indirect=True)
async def test_metrics_in_production_with_the_token(harness: Harness) -> None:
    """test_metrics_in_production_with_the_token — S32: outside dev the configured token reads
    /metrics, over HTTPS like the API; /readyz answers plain HTTP for the load balancer."""
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert (
        await harness.client.get("/metrics", headers={**VIA_HTTPS, **bearer})
    ).status_code == 200
    plain = await harness.client.get("/metrics", headers=bearer)
    assert plain.json()["error"] == "HttpsRequired"
    assert (await harness.client.get("/readyz")).status_code == 200


def test_a_short_metrics_token_is_refused(tmp_path: Path) -> None:
    """test_a_short_metrics_token_is_refused — a token of fewer than 32 characters stops the
    command with one line that names the setting and never the value."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env.update(
        BANKHUB_DATA_DIR=str(tmp_path), BANKHUB_ENV="test", BANKHUB_METRICS_TOKEN="short-token"
    )
    done = subprocess.run(
        [sys.executable, "-m", "bankhub", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, said
    assert "BANKHUB_METRICS_TOKEN must be at least 32 characters" in said
    assert "short-token" not in said
    assert "Traceback" not in said


# --- what /metrics says -------------------------------------------------------------------------


async def test_requests_are_labelled_by_route_template_never_by_raw_path(
    harness: Harness,
) -> None:
    """test_requests_are_labelled_by_route_template_never_by_raw_path — an id in the path comes
    out as the route's parameter, a path no route has as ``unmatched``, a made-up method as
    ``other``; the counts grow by the requests made."""
    before = parsed((await harness.client.get("/metrics")).text)
    keys = harness.headers()
    for event_id in (987654, 987655):
        await harness.client.get(f"/v2/event/{event_id}", headers=keys)
    await harness.client.get("/no/such/path/1234567")
    await harness.client.request("BREW", "/v2/customer")
    after = parsed((await harness.client.get("/metrics")).text)
    name = "bankhub_http_request_duration_seconds_count"
    routes = {dict(labels)["route"] for (sample, labels) in after if sample == name}
    assert not [route for route in routes if "98765" in route or "1234567" in route]
    # the one event's route (other tests of this process may have counted its replay route)
    event_route = next(r for r in routes if re.fullmatch(r"/v2/event/\{[^}/]+\}", r))

    def grown(route: str, status: str | None = None) -> float:
        """How many more answers on ``route`` (with ``status``) than before (other tests of this
        process count in the same registry)."""
        return sum(
            count - before.get((sample, labels), 0.0)
            for (sample, labels), count in after.items()
            if sample == name
            and dict(labels)["route"] == route
            and status in (None, dict(labels)["status"])
        )

    assert grown(event_route) == 2
    assert grown("unmatched", "404") == 1
    assert any(dict(labels).get("method") == "other" for (_, labels) in after)


async def test_the_queue_depth_and_the_due_sync_lag_come_from_the_database(
    harness: Harness,
) -> None:
    """test_the_queue_depth_and_the_due_sync_lag_come_from_the_database — after a connect
    with a webhook endpoint and no runner, the queue depth is the pending deliveries and its lag
    how long the oldest has been due; once the login's scheduled sync is due, the lag is how long
    it has waited (the injected clock moves, nothing sleeps)."""
    h = harness
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            app_id = (
                await session.execute(select(App.id).where(App.client_id == h.creds["client_id"]))
            ).scalar_one()
            await webhooks.create_endpoint(
                session,
                h.hub.keyring,
                h.clock(),
                app_id,
                "http://127.0.0.1:9/hook",
                allow_http=True,
                allow_private=True,
            )
    payload = await connect(h)
    login_id = int(payload["login_id"])

    async def pending_and_due(session: AsyncSession) -> tuple[int, Any]:
        rows = await session.execute(
            select(WebhookDelivery.id).where(WebhookDelivery.status == "pending")
        )
        login = await session.get(Login, login_id)
        assert login is not None
        return len(rows.all()), login.next_sync_at

    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            pending, next_sync_at = await pending_and_due(session)
    assert pending > 0
    assert next_sync_at is not None
    h.clock.now = as_utc(next_sync_at) + timedelta(minutes=7)
    samples = parsed((await h.client.get("/metrics")).text)
    assert samples[("bankhub_webhook_queue_depth", frozenset())] == pending
    assert samples[("bankhub_webhook_queue_lag_seconds", frozenset())] >= 7 * 60
    assert samples[("bankhub_syncs_due", frozenset())] == 1
    assert samples[("bankhub_sync_due_lag_seconds", frozenset())] == 7 * 60


# --- the shared directory -----------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_previous_runs_files_go_and_a_living_peers_stay(tmp_path: Path) -> None:
    """test_a_previous_runs_files_go_and_a_living_peers_stay — at start, the directory is
    emptied when none of the processes that wrote it lives (a restart of everything); while one
    lives nothing goes, so the sums a scrape makes never step back."""
    dead = _dead_pid()
    stale = [tmp_path / f"counter_{dead}.db", tmp_path / f"histogram_{dead}.db"]
    for path in stale:
        path.write_bytes(b"")
    assert metrics.clean(tmp_path) == 2
    assert list(tmp_path.iterdir()) == []

    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as peer:
        try:
            kept = [tmp_path / f"counter_{peer.pid}.db", tmp_path / f"counter_{dead}.db"]
            for path in kept:
                path.write_bytes(b"")
            assert metrics.clean(tmp_path) == 0
            assert sorted(tmp_path.iterdir()) == sorted(kept)
        finally:
            peer.kill()
