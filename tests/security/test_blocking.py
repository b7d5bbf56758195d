"""S18: addresses that fail authentication too often are blocked, in every process, until
the block ends or an operator lifts it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from typer.testing import CliRunner

from bankhub.cli import cli
from bankhub.config import Settings
from bankhub.db import migrate, tenancy
from bankhub.db.engine import Database
from bankhub.partners.models import BlockedAddress
from bankhub.security import shared
from bankhub.security.network import MemoryFailureCounts
from bankhub.security.shared import SharedStore
from tests.conftest import Harness
from tests.security.edge import audit_entries, client_from, envelope, new_process
from tests.support.asgi import plain_asgi
from tests.support.postgres import PostgresRoles, free_port
from tests.support.redis import RedisServer

BLOCKING = {
    "block_enabled": True,
    "block_failures": 3,
    "block_window_seconds": 60,
    "block_seconds": 600,
    "block_cache_seconds": 0,
}
ATTACKER = "198.51.100.66"


@pytest.mark.parametrize("harness", [BLOCKING], indirect=True)
async def test_failing_address_is_blocked_everywhere(harness: Harness) -> None:
    """test_failing_address_is_blocked_everywhere — S18: past the failure rate the address gets
    429 AddressBlocked with Retry-After even with good credentials, in this and other processes;
    the block is audited and ends on time; other addresses are untouched."""
    h = harness
    app = new_process(h.hub)
    wrong = {**h.headers(), "service-secret": "not-the-secret"}
    async with client_from(app, ATTACKER) as attacker, client_from(app, "203.0.113.5") as other:
        assert (await attacker.get("/v2/app", headers=wrong)).json()["error"] == (
            "CredentialInvalid"
        )
        unknown = await attacker.get("/v2/app", headers={"client-id": "guessed-client"})
        assert unknown.json()["error"] == "ClientNotFound"
        guessed = await attacker.get(
            "/v2/account", headers=h.headers(login_secret="00000000-0000-4000-8000-000000000000")
        )
        assert guessed.json()["error"] == "LoginNotFound"  # the third failure: blocked now

        refused = await attacker.get("/v2/app", headers=h.headers())
        assert refused.status_code == 429
        assert envelope(refused)["error"] == "AddressBlocked"
        assert 590 <= int(refused.headers["retry-after"]) <= 600
        assert (await other.get("/v2/app", headers=h.headers())).status_code == 200

    [entry] = await audit_entries(h.hub, "address.blocked")
    assert entry.target_id == ATTACKER
    assert "3 consecutive authentication failures" in entry.detail["reason"]
    async with h.hub.db.transaction() as session:
        row = await session.get(BlockedAddress, ATTACKER)
        assert row is not None
        assert row.blocked_until == h.clock.now + timedelta(seconds=600)

    # another process on the same database honours the stored block
    async with client_from(new_process(h.hub), ATTACKER) as elsewhere:
        assert (await elsewhere.get("/v2/app", headers=h.headers())).status_code == 429
        h.clock.advance(seconds=601)
        assert (await elsewhere.get("/v2/app", headers=h.headers())).status_code == 200


@pytest.mark.parametrize("harness", [BLOCKING], indirect=True)
async def test_failures_outside_the_window_do_not_block(harness: Harness) -> None:
    """test_failures_outside_the_window_do_not_block — S18: failures further apart than the
    window make no run, and failures that are not authentication failures do not count."""
    h = harness
    app = new_process(h.hub)
    wrong = {**h.headers(), "service-secret": "not-the-secret"}
    async with client_from(app, ATTACKER) as client:
        for _ in range(2):
            assert (await client.get("/v2/app", headers=wrong)).status_code == 400
        h.clock.advance(seconds=61)
        for _ in range(2):
            assert (await client.get("/v2/app", headers=wrong)).status_code == 400
        for _ in range(5):  # not found, bad JSON: not credential failures
            assert (await client.get("/v2/nothing-here", headers=h.headers())).status_code == 404
            bad = await client.post("/v2/customer", content=b"{", headers=h.headers())
            assert bad.status_code == 400
        assert (await client.get("/v2/app", headers=h.headers())).status_code == 200
    assert await audit_entries(h.hub, "address.blocked") == []


def test_unblock_command_lifts_a_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """test_unblock_command_lifts_a_block — S18: `bankhub unblock ADDRESS` removes the stored
    block and writes an audit entry; an unknown address is reported, not an error."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    settings = Settings()
    settings.resolved_secret_key()
    migrate.upgrade(settings.resolved_database_url())
    now = datetime.now(UTC)

    async def store() -> None:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                session.add(
                    BlockedAddress(
                        address="2001:db8::66",
                        reason="20 authentication failures within 300 s",
                        blocked_until=now + timedelta(minutes=15),
                        created_at=now,
                    )
                )
        finally:
            await db.dispose()

    async def rows() -> tuple[list[str], list[str]]:
        from bankhub.audit.models import AuditEntry

        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                blocks = (await session.execute(select(BlockedAddress.address))).scalars()
                audits = (
                    await session.execute(
                        select(AuditEntry.target_id).where(AuditEntry.action == "address.unblocked")
                    )
                ).scalars()
                return list(blocks), [str(a) for a in audits]
        finally:
            await db.dispose()

    asyncio.run(store())
    runner = CliRunner()
    result = runner.invoke(cli, ["unblock", "2001:DB8:0::66", "--json"])
    assert result.exit_code == 0, result.output
    assert '"unblocked": true' in result.stdout
    assert asyncio.run(rows()) == ([], ["2001:db8::66"])
    again = runner.invoke(cli, ["unblock", "2001:db8::66"])
    assert again.exit_code == 0
    assert "was not blocked" in again.output
    assert runner.invoke(cli, ["unblock", "not-an-address"]).exit_code == 2


#: the bar's numbers (S5): the defaults, only switched on (tests run with blocks off)
DEFAULTS = {"block_enabled": True, "block_cache_seconds": 0}
GUESSER = "198.51.100.67"


@pytest.mark.parametrize("harness", [DEFAULTS], indirect=True)
async def test_five_consecutive_failures_block_and_a_success_starts_the_count_again(
    harness: Harness,
) -> None:
    """test_five_consecutive_failures_block_and_a_success_starts_the_count_again — S5, S18:
    by default an address is blocked at its fifth consecutive authentication failure (wrong
    service-secret, wrong app-secret, unknown client, bad token); a verified credential from
    the address in between starts the count again."""
    h = harness
    assert h.hub.settings.block_failures == 5
    app = new_process(h.hub)
    failures = [
        {**h.headers(), "service-secret": "not-the-secret"},
        {**h.headers(mobile=True), "app-secret": "not-the-secret"},
        {"client-id": "guessed-client", "service-secret": "x"},
        {"authorization": "Bearer not.a.token"},
    ]
    async with client_from(app, GUESSER) as client:
        for headers in failures:
            assert (await client.get("/v2/app", headers=headers)).status_code in (400, 401, 404)
        assert (await client.get("/v2/app", headers=h.headers())).status_code == 200
        for headers in failures:
            assert (await client.get("/v2/app", headers=headers)).status_code in (400, 401, 404)
        assert (await client.get("/v2/app", headers=h.headers())).status_code == 200
        for headers in [*failures, failures[0]]:
            answer = await client.get("/v2/app", headers=headers)
            assert answer.status_code in (400, 401, 404), answer.text
        blocked = await client.get("/v2/app", headers=h.headers())
        assert blocked.status_code == 429
        assert envelope(blocked)["error"] == "AddressBlocked"
        assert 890 <= int(blocked.headers["retry-after"]) <= 900
    [entry] = await audit_entries(h.hub, "address.blocked")
    assert entry.detail["reason"] == "5 consecutive authentication failures"


@pytest.mark.parametrize("harness", [DEFAULTS], indirect=True)
async def test_login_secret_guesses_beside_a_valid_key_are_blocked(harness: Harness) -> None:
    """test_login_secret_guesses_beside_a_valid_key_are_blocked — S5: five guessed
    login-secrets block the address although each came with a valid service-secret: a request
    with a refused credential is a failure, whatever else in it was right."""
    h = harness
    app = new_process(h.hub)
    async with client_from(app, GUESSER) as client:
        for n in range(5):
            guess = h.headers(login_secret=f"00000000-0000-4000-8000-00000000000{n}")
            answer = await client.get("/v2/account", headers=guess)
            assert envelope(answer)["error"] == "LoginNotFound"
        assert envelope(await client.get("/v2/app", headers=h.headers()))["error"] == (
            "AddressBlocked"
        )


@pytest.mark.parametrize("harness", [DEFAULTS], indirect=True)
async def test_oauth_client_failures_count_towards_the_block(harness: Harness) -> None:
    """test_oauth_client_failures_count_towards_the_block — S18: wrong client secrets at
    /oauth/token, /oauth/introspect and /oauth/revoke count like the API's failures, and a
    blocked address is refused there too."""
    h = harness
    app = new_process(h.hub)
    client_id = h.creds["client_id"]
    async with client_from(app, GUESSER) as client:
        for path, form in (
            ("/oauth/token", {"grant_type": "client_credentials"}),
            ("/oauth/introspect", {"token": "x"}),
            ("/oauth/revoke", {"token": "x"}),
            ("/oauth/token", {"grant_type": "client_credentials"}),
            ("/oauth/token", {"grant_type": "refresh_token", "refresh_token": "x"}),
        ):
            answer = await client.post(path, data=form, auth=(client_id, "not-the-secret"))
            assert answer.status_code == 401
            assert answer.json()["error"] == "invalid_client"
        refused = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, h.creds["service_secret"]),
        )
        assert refused.status_code == 429
        assert envelope(refused)["error"] == "AddressBlocked"
    [entry] = await audit_entries(h.hub, "address.blocked")
    assert entry.target_id == GUESSER


@pytest.mark.parametrize("harness", [DEFAULTS], indirect=True)
async def test_a_right_secret_beside_a_wrong_one_is_a_failure(harness: Harness) -> None:
    """test_a_right_secret_beside_a_wrong_one_is_a_failure — S5: a wrong service-secret sent
    beside a valid app-secret is refused and counted; five of them block the address."""
    h = harness
    app = new_process(h.hub)
    both = {**h.headers(mobile=True), "service-secret": "not-the-secret"}
    async with client_from(app, GUESSER) as client:
        for _ in range(5):
            answer = await client.get("/v2/app", headers=both)
            assert envelope(answer)["error"] == "CredentialInvalid"
        assert envelope(await client.get("/v2/app", headers=h.headers()))["error"] == (
            "AddressBlocked"
        )


def test_the_failure_threshold_cannot_exceed_the_bar(tmp_path: Path) -> None:
    """test_the_failure_threshold_cannot_exceed_the_bar — S5: BANKHUB_BLOCK_FAILURES is at
    most 5; a looser setting stops start-up."""
    assert Settings(data_dir=tmp_path).block_failures == 5
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, block_failures=6)


async def test_runs_of_failures_in_memory_end_and_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """test_runs_of_failures_in_memory_end_and_stay_bounded — S18: the in-process store counts
    a run per address, starts it again after a pause or a clear, and forgets runs that ended
    (then the oldest) rather than grow without bound under a flood of addresses."""
    counts = MemoryFailureCounts()
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    idle = timedelta(seconds=60)
    assert [await counts.add("a", now, idle) for _ in range(3)] == [1, 2, 3]
    assert await counts.add("a", now + timedelta(seconds=59), idle) == 4
    assert await counts.add("a", now + timedelta(seconds=120), idle) == 1
    await counts.clear("a")
    await counts.clear("never-seen")
    assert await counts.add("a", now + timedelta(seconds=121), idle) == 1
    monkeypatch.setattr(MemoryFailureCounts, "MAX_ADDRESSES", 10)
    for n in range(10):
        await counts.add(f"old-{n}", now, idle)
    later = now + timedelta(seconds=130)
    await counts.add("fresh", later, idle)  # the eleventh: the ended runs are dropped
    assert await counts.add("a", later, idle) == 2
    assert await counts.add("old-0", later, idle) == 1
    for n in range(20):
        await counts.add(f"flood-{n}", later, idle)
    assert len(counts._runs) <= 10
    assert await counts.add("flood-19", later, idle) == 2  # the newest are kept


@pytest.fixture
def bankhub_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` for bankhub's loggers, still capturing after an app set up logging (Litestar
    replaces the root logger's handlers, and with them pytest's)."""
    logger = logging.getLogger("bankhub")
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def messages(log: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    """What was logged at ``level`` or above, each record once."""
    seen = {id(r): r for r in log.records if r.levelno >= level}
    return [r.getMessage() for r in seen.values()]


@asynccontextmanager
async def superuser(roles: PostgresRoles) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(roles.superuser_url)
    try:
        async with engine.begin() as connection:
            yield connection
    finally:
        await engine.dispose()


@pytest.mark.parametrize("app_role_harness", [DEFAULTS], indirect=True)
async def test_a_block_is_stored_and_audited_under_row_level_security(
    app_role_harness: Harness, postgres_roles: PostgresRoles, bankhub_log: pytest.LogCaptureFixture
) -> None:
    """test_a_block_is_stored_and_audited_under_row_level_security — S14, S18: as the runtime
    role, with row-level security on, a block and its address.blocked entry are stored, whether
    the guesser acted for no app (wrong secrets) or for one (login-secret guesses beside a valid
    key); every other process refuses the address for the whole configured block, and nothing
    failed on the way."""
    h = app_role_harness
    app = new_process(h.hub)
    wrong = {**h.headers(), "service-secret": "not-the-secret"}
    tenant_guesser = "198.51.100.68"
    async with client_from(app, GUESSER) as nobody, client_from(app, tenant_guesser) as tenant:
        for n in range(5):
            answer = await nobody.get("/v2/app", headers=wrong)
            assert envelope(answer)["error"] == "CredentialInvalid"
            guess = h.headers(login_secret=f"00000000-0000-4000-8000-00000000000{n}")
            answer = await tenant.get("/v2/account", headers=guess)
            assert envelope(answer)["error"] == "LoginNotFound"
    h.clock.advance(seconds=899)
    for address in (GUESSER, tenant_guesser):
        async with client_from(new_process(h.hub), address) as elsewhere:
            refused = await elsewhere.get("/v2/app", headers=h.headers())
            assert envelope(refused)["error"] == "AddressBlocked"
            assert refused.headers["retry-after"] == "1"
            h.clock.advance(seconds=2)
            assert (await elsewhere.get("/v2/app", headers=h.headers())).status_code == 200
            h.clock.advance(seconds=-2)
    async with superuser(postgres_roles) as su:
        blocks = await su.execute(
            text("select address, blocked_until - created_at from blocked_addresses")
        )
        assert sorted(blocks.tuples()) == [
            (GUESSER, timedelta(seconds=900)),
            (tenant_guesser, timedelta(seconds=900)),
        ]
        entries = await su.execute(
            text("select target_id, app_id from audit_log where action = 'address.blocked'")
        )
        assert sorted(entries.tuples()) == [(GUESSER, None), (tenant_guesser, None)]
    assert messages(bankhub_log, logging.ERROR) == []


@pytest.mark.parametrize("app_role_harness", [DEFAULTS], indirect=True)
async def test_a_block_the_database_refuses_is_logged_and_stored_with_the_next_outcome(
    app_role_harness: Harness, postgres_roles: PostgresRoles, bankhub_log: pytest.LogCaptureFixture
) -> None:
    """test_a_block_the_database_refuses_is_logged_and_stored_with_the_next_outcome — S18: when
    the block cannot be stored, the answer that completed the run still leaves as it should (no
    500), the failure is logged naming the address, the process refuses the address meanwhile,
    and the block is stored with the next authentication outcome it counts."""
    h = app_role_harness
    app = new_process(h.hub)
    wrong = {**h.headers(), "service-secret": "not-the-secret"}
    async with superuser(postgres_roles) as su:
        await su.execute(text(f"REVOKE INSERT ON blocked_addresses FROM {postgres_roles.app}"))
    async with client_from(app, GUESSER) as guesser, client_from(app, "203.0.113.8") as partner:
        for _ in range(5):
            answer = await guesser.get("/v2/app", headers=wrong)
            assert envelope(answer)["error"] == "CredentialInvalid"
        [logged] = messages(bankhub_log, logging.ERROR)
        assert logged.startswith(f"could not store the block of {GUESSER} until")
        assert envelope(await guesser.get("/v2/app", headers=h.headers()))["error"] == (
            "AddressBlocked"
        )
        async with superuser(postgres_roles) as su:
            await su.execute(text(f"GRANT INSERT ON blocked_addresses TO {postgres_roles.app}"))
        assert (await partner.get("/v2/app", headers=h.headers())).status_code == 200
    async with client_from(new_process(h.hub), GUESSER) as elsewhere:
        assert envelope(await elsewhere.get("/v2/app", headers=h.headers()))["error"] == (
            "AddressBlocked"
        )
    with tenancy.everything():
        [entry] = await audit_entries(h.hub, "address.blocked")
    assert entry.target_id == GUESSER


#: rate limits and blocks on, with a store that goes away
OUTAGE = {
    "rate_limits_enabled": True,
    "rate_limit_per_ip": "6/minute",
    "block_enabled": True,
    "block_failures": 3,
    "block_window_seconds": 60,
    "block_seconds": 600,
    "block_cache_seconds": 0,
}


@pytest.mark.parametrize("harness", [OUTAGE], indirect=True)
async def test_without_the_shared_store_requests_are_served_and_blocks_still_hold(
    harness: Harness, bankhub_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_without_the_shared_store_requests_are_served_and_blocks_still_hold — S18, S33: when
    Redis goes away while serving, no request fails for it: rate limits fail open (served,
    counted as unavailable, the outage logged once per process), failures are counted in the
    process so a guesser is still blocked, the block is stored in the database and refused by
    every process; once Redis is back, limits count again."""
    h = harness
    monkeypatch.setattr(shared, "RETRY_SECONDS", 0.0)  # try the store on every call
    with RedisServer() as server:
        h.hub.settings.rate_limit_storage = server.socket_url
        app, elsewhere = new_process(h.hub), new_process(h.hub)
        try:
            async with client_from(app, "192.0.2.20") as visitor:
                counted = await visitor.get("/service.json")
                assert counted.status_code == 200
                assert counted.headers["ratelimit"] == '"ip";r=5;t=60'
                server.halt()
                served = [await visitor.get("/service.json") for _ in range(10)]
                assert [r.status_code for r in served] == [200] * 10
                assert "ratelimit" not in served[-1].headers
            assert app.state.shared_store.unavailable >= 10
            wrong = {**h.headers(), "service-secret": "not-the-secret"}
            async with client_from(app, GUESSER) as guesser:
                for _ in range(3):
                    answer = await guesser.get("/v2/app", headers=wrong)
                    assert envelope(answer)["error"] == "CredentialInvalid"
                assert envelope(await guesser.get("/v2/app", headers=h.headers()))["error"] == (
                    "AddressBlocked"
                )
            async with client_from(elsewhere, GUESSER) as other:
                assert envelope(await other.get("/v2/app", headers=h.headers()))["error"] == (
                    "AddressBlocked"
                )
            outages = [m for m in messages(bankhub_log) if "is unavailable" in m]
            assert len(outages) == 2  # once per process
            expected = f"BANKHUB_RATE_LIMIT_STORAGE {server.socket_url} is unavailable"
            assert outages[0].startswith(expected)
            server.start()
            async with client_from(app, "192.0.2.21") as later:
                again = await later.get("/service.json")
                assert again.headers["ratelimit"] == '"ip";r=5;t=60'
            assert messages(bankhub_log, logging.ERROR) == []
        finally:
            for each in (app, elsewhere):
                await each.state.shared_store.close()


def test_unblock_lifts_the_block_in_the_shared_store_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """test_unblock_lifts_the_block_in_the_shared_store_too — S18: `bankhub unblock` removes the
    block from Redis as well, where every process looks first; when Redis does not answer it
    lifts what it can and fails naming BANKHUB_RATE_LIMIT_STORAGE, so the operator knows the
    processes still refuse the address."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_RATE_LIMIT_STORAGE", redis_url)
    settings = Settings()
    settings.resolved_secret_key()
    migrate.upgrade(settings.resolved_database_url())
    now = datetime.now(UTC)

    async def put_in_store(store: SharedStore) -> None:
        try:
            await store.block("2001:db8::67", now + timedelta(minutes=15), now)
        finally:
            await store.close()

    async def in_store(store: SharedStore) -> datetime | None:
        try:
            return await store.blocked_until("2001:db8::67")
        finally:
            await store.close()

    asyncio.run(put_in_store(SharedStore(settings)))
    runner = CliRunner()
    lifted = runner.invoke(cli, ["unblock", "2001:DB8::0:67", "--json"])
    assert lifted.exit_code == 0, lifted.output
    assert '"unblocked": true' in lifted.stdout
    assert asyncio.run(in_store(SharedStore(settings))) is None

    monkeypatch.setenv("BANKHUB_RATE_LIMIT_STORAGE", f"redis://127.0.0.1:{free_port()}/0")
    failed = runner.invoke(cli, ["unblock", "2001:db8::67"])
    assert failed.exit_code == 1
    assert "not in BANKHUB_RATE_LIMIT_STORAGE" in failed.output


@pytest.mark.parametrize("harness", [DEFAULTS], indirect=True)
async def test_the_block_is_stored_before_the_answer_that_completed_the_run_leaves(
    harness: Harness,
) -> None:
    """test_the_block_is_stored_before_the_answer_that_completed_the_run_leaves — S18: when the
    fifth failure's answer starts, the block is already in the database (and audited), so no
    process can serve the address once the guesser reads that answer, and nothing is left to
    fail after the answer started."""
    h = harness
    app = new_process(h.hub)
    wrong = {**h.headers(), "service-secret": "not-the-secret"}
    async with client_from(app, GUESSER) as client:
        for _ in range(4):
            assert (await client.get("/v2/app", headers=wrong)).status_code == 400

    at_start: dict[str, object] = {}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            at_start["status"] = message["status"]
            with tenancy.everything():
                async with h.hub.db.transaction() as session:
                    at_start["block"] = await session.get(BlockedAddress, GUESSER) is not None
                at_start["entries"] = len(await audit_entries(h.hub, "address.blocked"))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v2/app",
        "raw_path": b"/v2/app",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in wrong.items()],
        "client": (GUESSER, 40000),
        "server": ("testserver.local", 80),
    }
    await plain_asgi(app)(
        scope, receive, send
    )  # the fifth failure, its answer watched as it leaves
    assert at_start == {"status": 400, "block": True, "entries": 1}
