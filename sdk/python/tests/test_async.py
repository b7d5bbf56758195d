"""``AsyncBankhubClient`` against the same real server: the same surface, awaited."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest
from sdk_support import Bankhub, Linked

from bankhub_client import (
    AsyncBankhubClient,
    BankhubClient,
    ConflictError,
    NotFoundError,
)


def _client(bankhub: Bankhub, **options: Any) -> AsyncBankhubClient:
    if options.get("oauth"):
        options["service_secret"] = bankhub.app.service_secret
    else:
        options["app_secret"] = bankhub.app.app_secret
    return AsyncBankhubClient(bankhub.url, client_id=bankhub.app.client_id, **options)


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_the_async_client_has_the_same_methods_and_parameters() -> None:
    blocking, awaited = _public(BankhubClient), _public(AsyncBankhubClient)
    assert set(blocking) - {"close"} == set(awaited) - {"aclose"}
    for name, signature in blocking.items():
        if name == "close":
            continue
        twin = awaited[name]
        assert list(signature.parameters) == list(twin.parameters), name
        member = getattr(AsyncBankhubClient, name)
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member), name


async def test_reads_and_pages_like_the_blocking_client(bankhub: Bankhub, linked: Linked) -> None:
    with bankhub.client() as blocking:
        expected = blocking.list_transactions(login_secret=linked.login_secret)
        events = blocking.list_events(limit=500).data
    async with _client(bankhub) as client:
        login = await client.read_login(login_secret=linked.login_secret)
        assert login.id == linked.login_id
        accounts = await client.list_accounts(login_secret=linked.login_secret)
        assert accounts
        paged = [
            t async for t in client.iter_transactions(login_secret=linked.login_secret, per_page=9)
        ]
        assert [t.id for t in paged] == [t.id for t in expected]
        read = [e.id async for e in client.iter_events(limit=1)]
        assert read[: len(events)] == [e.id for e in events]
        pages = [
            p
            async for p in client.iter_transaction_changes(
                login_secret=linked.login_secret, account_id=accounts[0].id, count=50
            )
        ]
        assert not pages[-1].has_more
        assert sum(len(p.added) for p in pages) > 0


async def test_async_errors_are_typed(bankhub: Bankhub) -> None:
    async with _client(bankhub) as client:
        with pytest.raises(NotFoundError) as missing:
            await client.read_login(login_secret="none")
        assert missing.value.code == "LoginNotFound"
        assert missing.value.request_id
        await client.create_customer(identifier="async-twice")
        with pytest.raises(ConflictError):
            await client.create_customer(identifier="async-twice")


class LoseFirstAnswer(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = await super().handle_async_request(request)
        if len(self.sent) == 1:
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset after the request was carried out")
        return response


async def test_async_retry_keeps_the_key_and_the_oauth_token(bankhub: Bankhub) -> None:
    transport = LoseFirstAnswer()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with _client(
        bankhub,
        oauth=True,
        http_client=httpx.AsyncClient(transport=transport),
        sleep=sleep,
    ) as client:
        made = await client.create_customer(identifier="async-lost")
        await client.read_app()
    # the token request's answer was the one lost: asked again, then the calls
    paths = [r.url.path for r in transport.sent]
    assert paths == ["/oauth/token", "/oauth/token", "/v2/customer", "/v2/app"]
    assert len(slept) == 1
    assert made.identifier == "async-lost"
