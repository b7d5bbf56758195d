"""The per-process cache of credential look-ups (``bankhub.security.authcache``): a request it
answers reads no key nor login row, and any change to what it holds, by any writer (here a
connection of its own, as the CLI or another process would be), is refused from the very next
request. On PostgreSQL the cache is used only while its listener is connected."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bankhub.db import tenancy
from bankhub.security import authcache
from bankhub.signatures import services as signatures
from tests.conftest import Harness
from tests.security.test_audit import Holdings, holdings


def _statements(h: Harness) -> list[str]:
    """Every statement the hub sends from now on, on either of its engines."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    for engine in (h.hub.db.engine, h.hub.db.read_engine):
        if engine is not None:
            event.listen(engine.sync_engine, "before_cursor_execute", note)
    return seen


def _reads_credentials(statements: list[str]) -> bool:
    return any(
        f"FROM {table}" in statement for statement in statements for table in ("api_keys", "logins")
    )


async def _read(h: Harness, held: Holdings) -> httpx.Response:
    return await h.client.get(
        "/v2/transaction",
        params={"account_id": held.account_id},
        headers=h.headers(login_secret=held.secret),
    )


async def _as_another_writer(h: Harness, statement: str, **values: Any) -> None:
    """``statement`` committed on a connection of its own, outside the hub (as the CLI, a
    migration or another process would write)."""
    engine = create_async_engine(h.hub.settings.resolved_database_url(), poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await tenancy.span_every_app(connection)
            await connection.execute(text(statement), values)
    finally:
        await engine.dispose()


async def _live(h: Harness, live: bool = True) -> None:
    """The cache is (or is not) in service; PostgreSQL: once its listener (re)connected."""
    for _ in range(400):
        if h.hub.auth_cache.live is live:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"the authentication cache never became live={live}")


async def _warm(h: Harness, held: Holdings) -> list[str]:
    """Two reads; the second answered from the cache (no key nor login row read)."""
    await _live(h)
    first = await _read(h, held)
    assert first.status_code == 200, first.text
    seen = _statements(h)
    second = await _read(h, held)
    assert second.status_code == 200, second.text
    assert not _reads_credentials(seen), seen
    assert second.content == first.content
    return seen


def _pem() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


async def _require_signatures(h: Harness) -> None:
    async with h.hub.db.transaction() as session:
        app_id = (
            await session.execute(
                text("SELECT id FROM apps WHERE client_id = :c"), {"c": h.creds["client_id"]}
            )
        ).scalar_one()
        tenancy.choose(app_id)
        await signatures.add_key(
            session,
            app_id,
            public_key=_pem(),
            label=None,
            algorithm=None,
            required=True,
            now=datetime.now(UTC),
            actor="test",
        )


Change = Callable[[Harness, Holdings], Awaitable[None]]

CHANGES: dict[str, tuple[Change, int, str]] = {
    "key revoked": (
        lambda h, _held: _as_another_writer(
            h,
            "UPDATE api_keys SET revoked_at = :now WHERE kind = 'service' AND app_id = "
            "(SELECT id FROM apps WHERE client_id = :client)",
            now=datetime.now(UTC),
            client=h.creds["client_id"],
        ),
        401,
        "KeyRevoked",
    ),
    "allow-list narrowed": (
        lambda h, _held: _as_another_writer(
            h,
            "UPDATE apps SET ip_allowlist = :cidrs WHERE client_id = :client",
            cidrs='["10.9.8.0/24"]',
            client=h.creds["client_id"],
        ),
        403,
        "AddressNotAllowed",
    ),
    "login deactivated": (
        lambda h, held: _as_another_writer(
            h, "UPDATE logins SET active = false WHERE id = :id", id=held.login_id
        ),
        400,
        "BadRequest",
    ),
    "login secret replaced": (
        lambda h, held: _as_another_writer(
            h,
            "UPDATE logins SET secret_hash = :other WHERE id = :id",
            other="0" * 64,
            id=held.login_id,
        ),
        404,
        "LoginNotFound",
    ),
    "signatures required": (lambda h, _held: _require_signatures(h), 401, "SignatureRequired"),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_to_what_the_cache_holds_is_refused_from_the_next_request(
    harness: Harness, change: str
) -> None:
    """test_a_change_to_what_the_cache_holds_is_refused_from_the_next_request — S1, S2, S17:
    a read answered from the cache (no key nor login row read), then a change committed by
    another writer; the very next request is refused as it would be without a cache."""
    h = harness
    held = await holdings(h)
    await _warm(h, held)
    make, status, error = CHANGES[change]
    await make(h, held)
    refused = await _read(h, held)
    assert refused.status_code == status, refused.text
    assert refused.json()["error"] == error


async def test_the_counter_refuses_a_change_whose_notice_has_not_arrived(
    harness: Harness,
) -> None:
    """test_the_counter_refuses_a_change_whose_notice_has_not_arrived — PostgreSQL: a process
    whose listener has not yet heard of a committed revocation still refuses the key, since
    the statement entering the tenant reads the change counter."""
    h = harness
    if h.hub.db.dialect != "postgresql":
        pytest.skip("SQLite reads the counter before every request")
    held = await holdings(h)
    await _warm(h, held)
    listener = h.hub.auth_listener
    assert listener is not None
    assert listener.connection is not None
    await listener.connection.remove_listener(authcache.CHANNEL, listener.on_notice)
    await CHANGES["key revoked"][0](h, held)
    refused = await _read(h, held)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "KeyRevoked"


async def test_without_its_listener_the_cache_is_not_used_and_resumes_after_reconnecting(
    harness: Harness,
) -> None:
    """test_without_its_listener_the_cache_is_not_used_and_resumes_after_reconnecting —
    PostgreSQL: the listening connection killed (``pg_terminate_backend``), every request reads
    its key and login again (fail closed) and answers the same; once the listener is back the
    cache answers again."""
    h = harness
    if h.hub.db.dialect != "postgresql":
        pytest.skip("SQLite has no listener")
    held = await holdings(h)
    await _warm(h, held)
    listener = h.hub.auth_listener
    assert listener is not None
    assert listener.connection is not None
    pid = listener.connection.get_server_pid()
    await _as_another_writer(h, "SELECT pg_terminate_backend(:pid)", pid=pid)
    await _live(h, False)
    for _ in range(2):
        seen = _statements(h)
        answer = await _read(h, held)
        assert answer.status_code == 200, answer.text
        assert _reads_credentials(seen), "answered from the cache without its listener"
    await _live(h, True)
    assert listener.connection.get_server_pid() != pid
    await _warm(h, held)


@pytest.mark.parametrize("harness", [{"auth_cache": False}], indirect=True)
async def test_with_the_cache_off_every_request_reads_its_credentials(harness: Harness) -> None:
    """test_with_the_cache_off_every_request_reads_its_credentials — ``BANKHUB_AUTH_CACHE=off``
    (for diagnosis): every request reads its key and login."""
    h = harness
    held = await holdings(h)
    for _ in range(2):
        seen = _statements(h)
        assert (await _read(h, held)).status_code == 200
        assert _reads_credentials(seen)


def test_the_cache_keeps_at_most_its_bound_and_only_under_a_current_ticket() -> None:
    """test_the_cache_keeps_at_most_its_bound_and_only_under_a_current_ticket — a value read
    before an invalidation is never kept, and the oldest entries go past the bound."""
    cache = authcache.AuthCache(limit=2)
    cache.live = True
    ticket = authcache.Ticket(cache.generation)
    view = authcache.LoginView(1, 1, "c", True)
    cache.invalidate()  # a change committed while the value was being read
    cache.keep_login(ticket, (1, "a"), view)
    assert cache.login(authcache.Ticket(cache.generation), (1, "a")) is None
    ticket = authcache.Ticket(cache.generation)
    for digest in ("a", "b", "c"):
        cache.keep_login(ticket, (1, digest), view)
    assert cache.login(ticket, (1, "a")) is None
    assert cache.login(ticket, (1, "c")) == view


async def test_a_database_without_the_triggers_is_read_through(harness: Harness) -> None:
    """test_a_database_without_the_triggers_is_read_through — a table rebuilt without its
    trigger (SQLite's batch migrations copy tables) turns the cache off at start-up."""
    h = harness
    drop = (
        "DROP TRIGGER auth_version_api_keys_update"
        if h.hub.db.dialect == "sqlite"
        else "DROP TRIGGER auth_notify_api_keys ON api_keys"
    )
    engine = create_async_engine(h.hub.settings.resolved_migration_url(), poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(drop))
        cache = authcache.AuthCache()
        assert not await cache.verify(h.hub.db.engine)
        assert not cache.live
        assert not cache.enabled
    finally:
        await engine.dispose()


async def _access_token(h: Harness) -> str:
    answer = await h.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(h.creds["client_id"], h.creds["service_secret"]),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def _read_as_bearer(h: Harness, held: Holdings, token: str) -> httpx.Response:
    return await h.client.get(
        "/v2/transaction",
        params={"account_id": held.account_id},
        headers={"authorization": f"Bearer {token}", "login-secret": held.secret},
    )


BEARER_CHANGES: dict[str, tuple[str, str]] = {
    "grant revoked": (
        "UPDATE oauth_token_families SET revoked_at = :now WHERE app_id = "
        "(SELECT id FROM apps WHERE client_id = :client)",
        "InvalidToken",
    ),
    "key revoked": (
        "UPDATE api_keys SET revoked_at = :now WHERE kind = 'service' AND app_id = "
        "(SELECT id FROM apps WHERE client_id = :client)",
        "InvalidToken",
    ),
}


@pytest.mark.parametrize("change", list(BEARER_CHANGES))
async def test_a_cached_access_token_is_refused_from_the_request_after_its_grant_ends(
    harness: Harness, change: str
) -> None:
    """test_a_cached_access_token_is_refused_from_the_request_after_its_grant_ends — S1, S9:
    an access token verified once is answered from the cache (neither its grant nor its key
    read again); its grant or its key revoked by another writer, the very next request with it
    is refused."""
    h = harness
    held = await holdings(h)
    token = await _access_token(h)
    await _live(h)
    first = await _read_as_bearer(h, held, token)
    assert first.status_code == 200, first.text
    seen = _statements(h)
    second = await _read_as_bearer(h, held, token)
    assert second.status_code == 200, second.text
    assert second.content == first.content
    assert not any("oauth_token_families" in statement for statement in seen), seen
    statement, error = BEARER_CHANGES[change]
    await _as_another_writer(h, statement, now=datetime.now(UTC), client=h.creds["client_id"])
    refused = await _read_as_bearer(h, held, token)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == error


async def test_a_cached_access_token_is_refused_once_it_expires(harness: Harness) -> None:
    """test_a_cached_access_token_is_refused_once_it_expires — S9: the cache keeps a token's
    own times and checks them on every use."""
    h = harness
    held = await holdings(h)
    token = await _access_token(h)
    await _live(h)
    for _ in range(2):
        assert (await _read_as_bearer(h, held, token)).status_code == 200
    h.clock.advance(seconds=3601)
    refused = await _read_as_bearer(h, held, token)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "InvalidToken"
