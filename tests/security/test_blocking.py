"""S18: addresses that fail authentication too often are blocked, in every process, until
the block ends or an operator lifts it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bankhub.cli import cli
from bankhub.config import Settings
from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.partners.models import BlockedAddress
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
    assert "3 authentication failures" in entry.detail["reason"]
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
    """test_failures_outside_the_window_do_not_block — S18: the count is a sliding window, and
    failures that are not authentication failures do not count."""
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
