"""Credentials live only in memory for the fetch: never in the database, never in the logs."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import pytest
from sqlalchemy import select

from bankhub.db.models import Base
from tests.api.connect_client import ConnectDriver, create_customer, create_token
from tests.conftest import Harness


async def test_a_canary_password_is_found_nowhere(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = harness
    canary = f"canary-{secrets.token_hex(12)}"
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, await create_customer(h, "canary")))
    await driver.agree()
    await driver.login("user_otp", canary)  # refused by the bank: a wrong password
    assert "attempt" in driver.page
    await driver.login("user_otp")
    await driver.answer(code=canary)  # a wrong one-time code
    await driver.answer(code="123456")
    callback = await driver.finish()
    assert callback.payload["status"] == "success"

    async with h.hub.db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                assert canary not in repr(tuple(row)), table.name
    await h.hub.db.engine.dispose()
    files = await asyncio.to_thread(
        lambda: {p.name: p.read_bytes() for p in tmp_path.glob("*.sqlite3*")}
    )
    for name, content in files.items():
        assert canary.encode() not in content, name
    assert canary not in caplog.text
    assert canary not in driver.page
