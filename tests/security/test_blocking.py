"""S18: addresses that fail authentication too often are blocked, in every process, until
the block ends or an operator lifts it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from bankhub.cli import cli
from bankhub.config import Settings
from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.partners.models import BlockedAddress
from bankhub.security.network import MemoryFailureCounts
from tests.conftest import Harness
from tests.security.edge import audit_entries, client_from, envelope, new_process

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
