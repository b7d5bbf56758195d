"""The credential vault: off by default (reconnect needed), opt-in keeps logins refreshing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select, update

from bankhub.events.models import Event
from bankhub.logins.models import Login
from bankhub.partners.models import App
from tests.api.connect_client import connect
from tests.conftest import Harness


async def opt_in(h: Harness, enabled: bool) -> None:
    async with h.hub.db.transaction() as session:
        await session.execute(
            update(App)
            .where(App.client_id == h.creds["client_id"])
            .values(
                credential_vault=enabled,
                credential_vault_set_by="test",
                credential_vault_set_at=h.clock(),
            )
        )


async def refresh(h: Harness, secret: str) -> dict[str, object]:
    response = await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=secret))
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def stored_vault(h: Harness, login_id: int) -> str | None:
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, login_id)
        assert login is not None
        return login.vault_credentials_enc


async def test_without_the_vault_an_expired_bank_session_needs_the_user(harness: Harness) -> None:
    h = harness
    login = await connect(h, "user_session")
    assert await stored_vault(h, login["login_id"]) is None
    h.clock.advance(minutes=30)
    assert (await refresh(h, login["secret"]))["refreshed"] is True
    h.clock.advance(hours=1)
    data = await refresh(h, login["secret"])
    assert data["refreshed"] is False
    assert data["status"] == "login_session_expired"
    async with h.hub.db.transaction() as session:
        kinds = (await session.execute(select(Event.type))).scalars().all()
    assert "sync.failed" in kinds


async def test_with_the_vault_the_login_refreshes_unattended(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await opt_in(h, True)
    login = await connect(h, "user_session")
    sealed = await stored_vault(h, login["login_id"])
    assert sealed is not None
    assert sealed.startswith("v1.")
    for _ in range(3):
        h.clock.advance(hours=2)
        data = await refresh(h, login["secret"])
        assert data["refreshed"] is True, data
    # the password exists only as ciphertext bound to this login's row
    async with h.hub.db.transaction() as session:
        for row in (await session.execute(select(Login))).scalars():
            assert "pass_good" not in repr(row.__dict__)
    await h.hub.db.engine.dispose()
    if h.hub.db.dialect == "sqlite":
        files = await asyncio.to_thread(
            lambda: [p.read_bytes() for p in tmp_path.glob("*.sqlite3*")]
        )
        assert files
        assert all(b"pass_good" not in content for content in files)


async def test_a_sealed_copy_on_another_login_does_not_open(harness: Harness) -> None:
    h = harness
    await opt_in(h, True)
    first = await connect(h, "user_session")
    second = await connect(h, "user_session")
    sealed = await stored_vault(h, first["login_id"])
    async with h.hub.db.transaction() as session:
        await session.execute(
            update(Login).where(Login.id == second["login_id"]).values(vault_credentials_enc=sealed)
        )
    h.clock.advance(hours=2)
    data = await refresh(h, second["secret"])
    # the copy belongs to another row: it is refused and dropped, and the user must reconnect
    assert data["status"] == "login_session_expired"
    assert await stored_vault(h, second["login_id"]) is None
    assert (await refresh(h, first["secret"]))["refreshed"] is True


async def test_opting_out_forgets_kept_credentials(harness: Harness) -> None:
    h = harness
    await opt_in(h, True)
    login = await connect(h, "user_session")
    assert await stored_vault(h, login["login_id"]) is not None
    await opt_in(h, False)
    h.clock.advance(hours=2)
    data = await refresh(h, login["secret"])
    assert data["status"] == "login_session_expired"
    assert await stored_vault(h, login["login_id"]) is None
