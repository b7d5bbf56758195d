"""S19–S21: envelope encryption, row-bound ciphertexts, and rotation with rewrap under traffic."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from bankhub.accounts.models import Account
from bankhub.logins.models import Login
from bankhub.security import keyring as kr
from bankhub.security import rewrap as rw
from bankhub.security.crypto import DecryptionError, associated_data
from bankhub.sync.engine import login_state
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookEndpoint
from tests.api.connect_client import connect
from tests.conftest import Harness


async def _customer(h: Harness, identifier: str) -> str:
    answer = await h.client.post(
        "/v2/customer", headers=h.headers(), json={"identifier": identifier}
    )
    customer_id: str = answer.json()["data"]["customer_id"]
    return customer_id


async def _stored_values(h: Harness) -> list[str]:
    values: list[str] = []
    async with h.hub.db.transaction() as session:
        for spec in rw.ENCRYPTED:
            rows = await session.execute(
                text(f"SELECT {spec.column} FROM {spec.table} WHERE {spec.column} IS NOT NULL")  # noqa: S608 - names from the fixed list
            )
            values.extend(str(r[0]) for r in rows)
    return values


async def _everything_decrypts(h: Harness) -> int:
    """Open every encrypted value with a freshly loaded keyring; how many there were."""
    fresh = kr.Keyring(kr.load_keks(h.hub.settings), h.hub.settings.resolved_secret_key())
    opened = 0
    async with h.hub.db.transaction() as session:
        await fresh.load(session)
        for spec in rw.ENCRYPTED:
            t = spec.sql()
            found = await session.execute(select(t).where(t.c[spec.column].is_not(None)))
            for values in found.mappings():
                fresh.decrypt(values[spec.column], spec.aad_of(values))
                opened += 1
    return opened


async def test_personal_fields_are_encrypted_and_bound_to_their_row(harness: Harness) -> None:
    """S19: IBAN/number/holder and connector state are ciphertexts with a key id; a value
    copied to another row does not decrypt."""
    await connect(harness, "user_good", customer_id=await _customer(harness, "enc-1"))
    await connect(harness, "user_good", customer_id=await _customer(harness, "enc-2"))
    async with harness.hub.db.transaction() as session:
        accounts = (await session.execute(select(Account).order_by(Account.id))).scalars().all()
        logins = (await session.execute(select(Login).order_by(Login.id))).scalars().all()
    sealed = [a for a in accounts if a.iban_enc or a.number_enc]
    assert sealed, "the sandbox accounts carry numbers"
    assert all(a.connector_state_enc and a.connector_state == {} for a in logins)
    first, second = sealed[0], sealed[-1]
    value = first.iban_enc or first.number_enc
    assert value is not None
    assert value.startswith(f"v1.{harness.hub.keyring.primary}.")
    column = "iban" if first.iban_enc else "number"
    with pytest.raises(DecryptionError):
        harness.hub.keyring.decrypt(
            value, associated_data(second.app_id, "accounts", column, second.id)
        )
    state = login_state(harness.hub.keyring, logins[0])
    assert isinstance(state, dict)
    with pytest.raises(DecryptionError):
        harness.hub.keyring.decrypt(
            logins[0].connector_state_enc or "",
            associated_data(logins[1].app_id, "logins", "connector_state", logins[1].id),
        )


async def test_data_keys_are_wrapped_by_a_kek_outside_the_database(harness: Harness) -> None:
    """S20: the stored data key is not the key; another KEK cannot open it."""
    async with harness.hub.db.transaction() as session:
        rows = (await session.execute(text("SELECT kid, wrapped_key, kek_id FROM data_keys"))).all()
    assert rows
    stranger = kr.parse_kek(kr.new_kek_text())
    for kid, wrapped, kek_id in rows:
        assert kek_id == harness.hub.keyring.kek.id
        with pytest.raises(kr.KeyringError):
            stranger.unwrap(wrapped, f"bankhub data key|{kid}".encode())


async def test_rotate_and_rewrap_while_requests_continue(harness: Harness) -> None:
    """S21: add → promote → rewrap → retire with connects and webhook writes running
    alongside; afterwards every value decrypts and nothing uses the old key."""
    hub = harness.hub
    await connect(harness, "user_good", customer_id=await _customer(harness, "before"))
    async with hub.db.transaction() as session:
        app_id = (
            await session.execute(text("SELECT id FROM apps ORDER BY id LIMIT 1"))
        ).scalar_one()
        await webhooks.create_endpoint(
            session,
            hub.keyring,
            hub.clock(),
            app_id,
            "http://127.0.0.1:9/hook",
            None,
            allow_http=True,
        )
    old = hub.keyring.primary
    stop = asyncio.Event()

    async def traffic() -> int:
        n = 0
        while not stop.is_set():
            await connect(harness, "user_good", customer_id=await _customer(harness, f"during-{n}"))
            async with hub.db.transaction() as session:
                endpoint = (await session.execute(select(WebhookEndpoint))).scalars().first()
                assert endpoint is not None
                await webhooks.rotate_secret(
                    session, hub.keyring, hub.clock(), endpoint, timedelta(hours=1)
                )
            n += 1
            await asyncio.sleep(0)
        return n

    async def rotation() -> None:
        async with hub.db.transaction() as session:
            kid = await kr.add_key(session, hub.keyring, hub.clock())
        await hub.keyring.refresh(hub.db)  # every process loads it before it is promoted
        await asyncio.sleep(0.05)
        async with hub.db.transaction() as session:
            await kr.promote(session, kid, hub.clock())
        await hub.keyring.refresh(hub.db)
        for _ in range(3):
            await rw.rewrap(hub.db, hub.keyring, batch=2)
            await asyncio.sleep(0.05)
        stop.set()

    runner = asyncio.create_task(traffic())
    await rotation()
    rounds = await runner
    assert rounds >= 1
    await rw.rewrap(hub.db, hub.keyring, batch=50)  # a final pass catches writes made meanwhile
    assert await rw.count_using(hub.db, old) == 0
    new = hub.keyring.primary
    assert new != old
    assert all(v.startswith(f"v1.{new}.") for v in await _stored_values(harness))
    assert await _everything_decrypts(harness) > 0
    async with hub.db.transaction() as session:
        await kr.retire(session, old, hub.clock(), await rw.count_using(hub.db, old))
    await hub.keyring.refresh(hub.db)
    assert old not in hub.keyring._require().kids
    assert await _everything_decrypts(harness) > 0


async def test_a_key_in_use_cannot_be_retired(harness: Harness) -> None:
    await connect(harness, "user_good", customer_id=await _customer(harness, "in-use"))
    hub = harness.hub
    old = hub.keyring.primary
    async with hub.db.transaction() as session:
        kid = await kr.add_key(session, hub.keyring, hub.clock())
        await kr.promote(session, kid, hub.clock())
    using = await rw.count_using(hub.db, old)
    assert using > 0
    with pytest.raises(kr.KeyringError, match="still use"):
        async with hub.db.transaction() as session:
            await kr.retire(session, old, hub.clock(), using)


async def test_plain_connector_state_is_sealed_by_rewrap(harness: Harness) -> None:
    """Rows written before encryption at rest become ciphertexts, readable as before."""
    await connect(harness, "user_good", customer_id=await _customer(harness, "legacy"))
    hub = harness.hub
    async with hub.db.transaction() as session:
        login = (await session.execute(select(Login))).scalars().first()
        assert login is not None
        state: dict[str, Any] = login_state(hub.keyring, login)
        await session.execute(
            text(
                "UPDATE logins SET connector_state = :s, connector_state_enc = NULL WHERE id = :i"
            ),
            {"s": json.dumps(state), "i": login.id},
        )
    report = await rw.rewrap(hub.db, hub.keyring)
    assert report.sealed_plain == 1
    async with hub.db.transaction() as session:
        login = (await session.execute(select(Login))).scalars().first()
        assert login is not None
        assert login.connector_state == {}
        assert login_state(hub.keyring, login) == state
