"""A connect step that reaches another API process than the one holding its session.

Two (or three) bankhub applications on one hub and database, each with its own connect sessions
in memory, as two processes behind a load balancer; the hop between them goes through httpx to
the peer application in process (``tests/scale/test_connect_routing.py`` does the same with two
real ``bankhub serve`` processes on PostgreSQL). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select

from bankhub.api.errors import STATUS, ErrorCode
from bankhub.app import create_app
from bankhub.config import ConfigError
from bankhub.connect.flow import ConnectFlow
from bankhub.connect.models import ConnectRoute
from bankhub.connect.routing import HOP_ANSWER, HOP_PATH, HOP_PURPOSE, HOP_SIGNATURE, pack
from bankhub.logins.models import Login
from bankhub.partners.models import BlockedAddress
from tests.api.connect_client import (
    WAITING,
    ConnectDriver,
    create_customer,
    create_token,
    way_back,
)
from tests.api.test_connect_flow import BANK_LINK, REQUEST_FIELD, RETURN_FIELD
from tests.conftest import BASE_URL, Harness, make_settings
from tests.support.asgi import asgi_transport

A_URL = "http://a.internal:8001"


class Balancer(httpx.AsyncBaseTransport):
    """A load balancer without sticky sessions: each request goes to the next process in turn,
    or to the one ``pin`` names."""

    def __init__(self, *apps: Litestar) -> None:
        self.transports = [asgi_transport(app) for app in apps]
        self._turns = itertools.cycle(range(len(apps)))
        self.pin: int | None = None
        self.served: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        n = self.pin if self.pin is not None else next(self._turns)
        self.served.append(n)
        return await self.transports[n].handle_async_request(request)


@dataclass
class Cluster:
    h: Harness
    a: Litestar
    b: Litestar
    balancer: Balancer
    user: Harness

    def flow(self, app: Litestar) -> ConnectFlow:
        flow: ConnectFlow = app.state.connect
        return flow


@pytest.fixture
async def cluster(harness: Harness) -> AsyncIterator[Cluster]:
    """Processes A and B; A is reachable at ``A_URL`` (B's hop goes to A in process)."""
    a, b = create_app(harness.hub), create_app(harness.hub)
    a.state.connect.routing.url = A_URL
    b.state.connect.routing.url = "http://b.internal:8002"
    b.state.connect.routing.transport = asgi_transport(a)
    balancer = Balancer(a, b)
    async with httpx.AsyncClient(
        transport=balancer, base_url=BASE_URL, headers={"Accept-Language": "en"}
    ) as browser:
        user = Harness(harness.hub, browser, harness.creds)
        try:
            yield Cluster(harness, a, b, balancer, user)
        finally:
            await b.state.connect.routing.stop()


async def _opened_on_a(c: Cluster, name: str) -> ConnectDriver:
    """A connect opened on A (the link), then the user's next request goes to B."""
    token = await create_token(c.h, await create_customer(c.h, name))
    driver = ConnectDriver(c.user)
    c.balancer.pin = 0
    await driver.open(token)
    assert "asks to read your bank data" in driver.page
    c.balancer.pin = 1
    return driver


async def _logins(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        return int((await session.execute(select(func.count(Login.id)))).scalar_one())


async def test_a_connect_spread_over_two_processes_completes(cluster: Cluster) -> None:
    """Every other request reaches the process without the session; each is passed on."""
    c = cluster
    token = await create_token(c.h, await create_customer(c.h, "round-robin"))
    driver = ConnectDriver(c.user)
    await driver.open(token)  # A opens, B shows the consent page
    assert "asks to read your bank data" in driver.page
    await driver.agree()
    page = await driver.login("user_otp")
    assert "code" in page.lower(), page
    await driver.answer(code="123456")
    callback = await driver.finish()
    assert callback.payload["status"] == "success"
    assert await _logins(c.h) == 1
    assert set(c.balancer.served) == {0, 1}
    # the session was A's all along: B holds nothing, and the route names A
    assert c.flow(c.b).holds(None) is False
    async with c.h.hub.db.transaction() as session:
        [route] = (await session.execute(select(ConnectRoute))).scalars().all()
    assert (route.owner, route.owner_url) == (c.flow(c.a).routing.owner, A_URL)


async def _back_from_the_bank(c: Cluster, driver: ConnectDriver) -> str:
    """The user approves on the sandbox bank's page; where the bank sends them back."""
    link = BANK_LINK.search(driver.page)
    assert link, driver.page
    bank_page = await c.user.client.get(html.unescape(link.group(1)).removeprefix(BASE_URL))
    request_id = REQUEST_FIELD.search(bank_page.text)
    return_url = RETURN_FIELD.search(bank_page.text)
    assert request_id
    assert return_url
    back = await c.user.client.post(
        "/sandbox-bank/authorize",
        data={
            "request": html.unescape(request_id.group(1)),
            "return_url": html.unescape(return_url.group(1)),
            "decision": "approve",
        },
        follow_redirects=False,
    )
    location: str = back.headers["location"]
    assert location.startswith(f"{BASE_URL}/v2/connect/return?state=")
    return location.removeprefix(BASE_URL)


async def test_the_banks_redirect_reaching_the_other_process_finds_its_session(
    cluster: Cluster,
) -> None:
    """The redirect back from the bank is routed by its ``state``: in the same browser the flow
    goes on; in another browser (no cookie) the owner ends it as it does for one process."""
    c = cluster
    for browser in ("same", "other"):
        driver = await _opened_on_a(c, f"redirect-{browser}")
        c.balancer.pin = 0
        await driver.agree()
        await driver.login("user_redirect")
        location = await _back_from_the_bank(c, driver)
        c.balancer.pin = 1  # the bank's redirect reaches B
        if browser == "same":
            returned = await c.user.client.get(location, follow_redirects=False)
            assert returned.status_code == 303, returned.text
            await driver.show()
            assert (await driver.finish()).payload["status"] == "success"
        else:
            async with httpx.AsyncClient(
                transport=c.balancer, base_url=BASE_URL, headers={"Accept-Language": "en"}
            ) as other:
                elsewhere = await other.get(location, follow_redirects=False)
            assert elsewhere.status_code == 400
            assert "another browser" in way_back(elsewhere.text).payload["message"]
            assert "another browser" in await driver.show()
    assert await _logins(c.h) == 1


async def test_a_passed_on_step_is_counted_once_by_the_process_that_received_it(
    harness: Harness,
) -> None:
    """The connect form limit is counted where the load balancer sent the step, before any
    lookup; the owner does not count it again."""
    h = harness
    h.hub.settings.rate_limits_enabled = True
    h.hub.settings.rate_limit_connect = "3/minute"
    a, b = create_app(h.hub), create_app(h.hub)
    a.state.connect.routing.url = A_URL
    b.state.connect.routing.transport = asgi_transport(a, client=("203.0.113.7", 4711))
    balancer = Balancer(a, b)
    async with httpx.AsyncClient(
        transport=balancer, base_url=BASE_URL, headers={"Accept-Language": "en"}
    ) as browser:
        c = Cluster(h, a, b, balancer, Harness(h.hub, browser, h.creds))
        driver = await _opened_on_a(c, "limits")
        csrf = driver.csrf()
        statuses = []
        for _ in range(4):
            sent = await browser.post(
                "/v2/connect/cancel", data={"csrf": csrf}, follow_redirects=False
            )
            statuses.append(sent.status_code)
        assert statuses == [303, 303, 303, 429]  # the fourth is refused by B itself
        assert sent.headers["retry-after"]
        # A counted none of the three B passed on: from the same address, a form is taken
        # there (and refused on B)
        async with httpx.AsyncClient(
            transport=balancer, base_url=BASE_URL, headers={"Accept-Language": "en"}
        ) as fresh:
            balancer.pin = 0
            on_a = await fresh.post("/v2/connect/consent", data={}, follow_redirects=False)
            balancer.pin = 1
            on_b = await fresh.post("/v2/connect/consent", data={}, follow_redirects=False)
        assert on_a.status_code == 400, on_a.text
        assert on_b.status_code == 429
        await b.state.connect.routing.stop()


async def test_the_owner_serves_a_passed_on_step_as_the_users_own_request(
    harness: Harness,
) -> None:
    """The owner sees the user's address (not the passing process's): an address blocked
    there is refused there, whichever process passed its request on."""
    h = harness
    h.hub.settings.block_enabled = True
    a = create_app(h.hub)
    now = h.clock()
    async with h.hub.db.transaction() as session:
        session.add(
            BlockedAddress(
                address="198.51.100.66",
                reason="20 authentication failures within 300 s",
                blocked_until=now + timedelta(minutes=15),
                created_at=now,
            )
        )
    owner = a.state.connect.routing.owner
    async with httpx.AsyncClient(
        transport=asgi_transport(a, client=("203.0.113.7", 4711)), base_url=BASE_URL
    ) as peer:
        for user, blocked in (("198.51.100.66", True), ("198.51.100.67", False)):
            scope = _scope("/v2/connect/session") | {"client": (user, 5000)}
            envelope = pack(scope, b"", owner=owner, at=now)
            served = await peer.post(
                HOP_PATH, content=envelope, headers={HOP_SIGNATURE: _signed_by(h, envelope)}
            )
            assert ('data-code="AddressBlocked"' in served.text) is blocked, (user, served.text)
            assert served.status_code == (STATUS[ErrorCode.ADDRESS_BLOCKED] if blocked else 400)


async def test_the_process_that_held_the_session_stopped(cluster: Cluster) -> None:
    """A shut down: B says the connection was interrupted, with the way back; never that the
    link expired."""
    c = cluster
    driver = await _opened_on_a(c, "stopped")
    await c.flow(c.a).close()
    page = await driver.show()
    assert driver.status == 400
    assert "This connection was interrupted" in page
    assert "expired" not in page
    back = way_back(page)
    assert back.payload["error"] == "TokenExpire"
    assert "server that held it stopped" in back.payload["message"]


async def test_a_restarted_process_at_the_owners_address_says_the_session_is_gone(
    cluster: Cluster,
) -> None:
    c = cluster
    driver = await _opened_on_a(c, "restarted")
    again = create_app(c.h.hub)  # a new process listening where A did
    c.flow(c.b).routing.transport = asgi_transport(again)
    page = await driver.show()
    assert driver.status == 400
    assert "This connection was interrupted" in page
    assert way_back(page).payload["error"] == "TokenExpire"


@pytest.mark.parametrize("owner_url", [None, "http://127.0.0.1:9"])
async def test_an_owner_out_of_reach_is_said_plainly_with_a_retry_and_the_way_back(
    cluster: Cluster, owner_url: str | None
) -> None:
    """No internal URL, or nobody answering there: the page says the connection is open on
    another server, offers to try again (the next attempt may reach it) and the way back."""
    c = cluster
    c.flow(c.a).routing.url = owner_url
    c.flow(c.b).routing.transport = None  # the real network
    driver = await _opened_on_a(c, f"unreachable-{owner_url is None}")
    page = await driver.show()
    assert driver.status == 503
    assert "Your connection is open on another server" in page
    assert 'id="retry" href="/v2/connect/session"' in page
    assert "expired" not in page
    assert "could not be reached" in way_back(page).payload["message"]
    # trying again through the balancer reaches A, where the flow goes on
    c.balancer.pin = 0
    assert "asks to read your bank data" in await driver.show()


async def test_a_page_of_an_ended_session_is_shown_by_its_owner(cluster: Cluster) -> None:
    """A session that ended on A (here: cancelled) shows its end page through B too."""
    c = cluster
    driver = await _opened_on_a(c, "ended")
    callback = await driver.cancel()
    assert callback.payload == {"status": "cancelled"}
    c.balancer.pin = 1
    page = await driver.show()
    assert driver.status == 200
    assert "This connection was cancelled" in page
    assert WAITING not in page


# --- the hop itself ---------------------------------------------------------------------------


def _signed(c: Cluster, envelope: bytes) -> str:
    return _signed_by(c.h, envelope)


def _signed_by(h: Harness, envelope: bytes) -> str:
    return h.hub.hasher.hash(hashlib.sha256(envelope).hexdigest(), purpose=HOP_PURPOSE)


def _scope(path: str) -> dict[str, object]:
    return {
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver.local")],
        "client": ("198.51.100.1", 1234),
        "server": ("testserver.local", 80),
        "scheme": "http",
    }


async def test_a_hop_not_signed_by_a_bankhub_process_is_refused(cluster: Cluster) -> None:
    c = cluster
    owner = c.flow(c.a).routing.owner
    async with httpx.AsyncClient(transport=asgi_transport(c.a), base_url=BASE_URL) as peer:

        async def hop(envelope: bytes, signature: str) -> httpx.Response:
            return await peer.post(HOP_PATH, content=envelope, headers={HOP_SIGNATURE: signature})

        fresh = pack(_scope("/v2/connect/session"), b"", owner=owner, at=c.h.clock())
        forged = await hop(fresh, "0" * 64)
        assert (forged.status_code, forged.headers[HOP_ANSWER]) == (403, "refused")
        old = pack(_scope("/v2/connect/session"), b"", owner=owner, at=c.h.clock() - _minute())
        late = await hop(old, _signed(c, old))
        assert (late.status_code, late.headers[HOP_ANSWER]) == (403, "refused")
        api = pack(_scope("/v2/account"), b"", owner=owner, at=c.h.clock())
        elsewhere = await hop(api, _signed(c, api))
        assert (elsewhere.status_code, elsewhere.headers[HOP_ANSWER]) == (403, "refused")
        # a well-signed hop for a session of this process: served as the user's own request
        served = await hop(fresh, _signed(c, fresh))
        assert HOP_ANSWER not in served.headers
        assert served.status_code == 400  # no such session: the page says so itself
        assert 'data-code="TokenExpire"' in served.text
        # the same hop again, young and well signed: a capture sent twice is taken once
        replayed = await hop(fresh, _signed(c, fresh))
        assert (replayed.status_code, replayed.headers[HOP_ANSWER]) == (403, "refused")
        # two hops of one request are two envelopes (each has its own nonce)
        again = pack(_scope("/v2/connect/session"), b"", owner=owner, at=c.h.clock())
        assert again != fresh
        assert HOP_ANSWER not in (await hop(again, _signed(c, again))).headers
        other = pack(_scope("/v2/connect/session"), b"", owner="0" * 32, at=c.h.clock())
        gone = await hop(other, _signed(c, other))
        assert (gone.status_code, gone.headers[HOP_ANSWER]) == (421, "not-here")
        assert json.dumps("not-here") not in served.text


def _minute() -> timedelta:
    return timedelta(minutes=1)


async def test_rows_nobody_can_name_any_more_are_cleared_and_hold_no_secret(
    cluster: Cluster,
) -> None:
    """A session's row keeps only keyed hashes; once its link and cookie are past their life,
    nothing routes by it and the next connect opened clears it away."""
    c = cluster
    driver = await _opened_on_a(c, "old")
    sid = c.user.client.cookies.get("bankhub_connect")
    assert sid
    async with c.h.hub.db.transaction() as session:
        [old] = (await session.execute(select(ConnectRoute))).scalars().all()
    assert sid not in (old.session_hash, old.state_hash)
    assert old.session_hash == c.h.hub.hasher.hash(sid, purpose="connect-session")
    c.h.clock.advance(seconds=c.h.hub.settings.token_ttl_seconds + 1)
    assert await c.flow(c.b).routing.find(sid=sid) is None
    page = await driver.show()  # B no longer finds where the session was: it says so itself
    assert driver.status == 400
    assert 'data-code="TokenExpire"' in page
    await _opened_on_a(c, "new")
    async with c.h.hub.db.transaction() as session:
        left = (await session.execute(select(ConnectRoute.session_hash))).scalars().all()
    assert old.session_hash not in left
    assert len(left) == 1


def test_the_internal_url_must_be_an_http_url(tmp_path: Path) -> None:
    """A bare address would make every hop fail at run time: refused at start-up instead.
    (``serve``'s default, its own address, is what tests/scale/test_connect_routing.py uses.)"""
    with pytest.raises(ConfigError, match="BANKHUB_INTERNAL_URL"):
        make_settings(tmp_path, "sqlite+aiosqlite://", internal_url="10.0.0.5:8001")
    settings = make_settings(tmp_path, "sqlite+aiosqlite://", internal_url="https://10.0.0.5:8001")
    assert settings.internal_url == "https://10.0.0.5:8001"
