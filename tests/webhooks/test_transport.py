"""KeyedTransport: connections kept per (checked address, port, TLS name), never across names."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bankhub.webhooks.sender import MAX_ANSWER_BODY, AttemptResult, deliver
from bankhub.webhooks.signing import new_secret, webhook_headers
from bankhub.webhooks.transport import KeyedTransport
from tests.support.raw_http import Receiver
from tests.webhooks.tls_material import make_tls

BODY = json.dumps({"type": "transactions.new", "data": {"login_id": 1}}).encode()
SECRET = new_secret()


async def _answer(addresses: list[str]) -> list[str]:
    return addresses


@pytest.fixture
async def peer() -> AsyncIterator[Receiver]:
    receiver = Receiver(keep_alive=True, body=b'{"ok":true}')
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.fixture(params=["direct", "httpx"])
def via(request: pytest.FixtureRequest) -> str:
    """Each test posts to the transport directly (the runner's way) and through an httpx
    client wrapping it (the hub's ``webhook_http``)."""
    return str(request.param)


@contextlib.asynccontextmanager
async def using(
    transport: KeyedTransport, via: str
) -> AsyncIterator[httpx.AsyncClient | KeyedTransport]:
    if via == "direct":
        try:
            yield transport
        finally:
            await transport.aclose()
        return
    async with httpx.AsyncClient(
        transport=transport, trust_env=False, follow_redirects=False
    ) as http:
        yield http


async def send(
    http: httpx.AsyncClient | KeyedTransport,
    url: str,
    *,
    keep_alive: bool = True,
    resolver_answer: str | None = None,
    allow_http: bool = True,
) -> AttemptResult:
    headers = webhook_headers("msg_1", int(time.time()), BODY, [SECRET])
    return await deliver(
        http,
        url,
        BODY,
        headers,
        allow_private=True,
        allow_http=allow_http,
        timeout=5,
        keep_alive=keep_alive,
        resolver=(lambda host, port: _answer([resolver_answer])) if resolver_answer else None,
    )


async def test_one_connection_carries_many_deliveries(peer: Receiver, via: str) -> None:
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        for _ in range(5):
            result = await send(http, peer.url + "/hook")
            assert (result.outcome, result.response_excerpt) == ("delivered", '{"ok":true}')
    assert len(peer.received) == 5
    assert peer.connections == 1
    assert transport.opened == 1
    assert {r.headers.get("connection") for r in peer.received} == {"keep-alive"}


async def test_chunked_answers_are_read_and_the_connection_kept(peer: Receiver, via: str) -> None:
    peer.chunked = True
    peer.body = b"accepted, thank you very much"
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        first = await send(http, peer.url)
        second = await send(http, peer.url)
    assert first.response_excerpt == second.response_excerpt == "accepted, thank you very much"
    assert peer.connections == 1


async def test_concurrent_deliveries_open_no_more_connections_than_in_flight(
    peer: Receiver, via: str
) -> None:
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        for _ in range(3):
            results = await asyncio.gather(*(send(http, peer.url) for _ in range(4)))
            assert {r.outcome for r in results} == {"delivered"}
    assert len(peer.received) == 12
    assert transport.opened == peer.connections <= 4


async def test_a_connection_asked_to_close_is_not_kept(via: str) -> None:
    closing = Receiver()  # answers with Connection: close
    await closing.start()
    transport = KeyedTransport(ssl.create_default_context())
    try:
        async with using(transport, via) as http:
            assert (await send(http, closing.url)).outcome == "delivered"
            assert (await send(http, closing.url)).outcome == "delivered"
    finally:
        await closing.stop()
    assert closing.connections == transport.opened == 2


async def test_a_request_that_asks_to_close_does_not_keep_its_connection(
    peer: Receiver, via: str
) -> None:
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        await send(http, peer.url, keep_alive=False)
        await send(http, peer.url, keep_alive=False)
    assert [r.headers["connection"] for r in peer.received] == ["close", "close"]
    assert transport.opened == 2


async def test_a_kept_connection_the_receiver_dropped_is_replaced(peer: Receiver, via: str) -> None:
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        assert (await send(http, peer.url)).outcome == "delivered"
        # the receiver drops its idle connection (as servers do after a keep-alive timeout)
        for task in list(peer._tasks):
            task.cancel()
        await asyncio.sleep(0.05)
        result = await send(http, peer.url)
    assert result.outcome == "delivered"
    assert peer.connections == 2
    assert len(peer.received) == 2


async def test_a_body_read_to_its_end_keeps_the_connection_one_cut_short_closes_it(
    peer: Receiver, via: str
) -> None:
    peer.chunked, peer.chunk_size = True, 64 * 1024
    peer.body = b"x" * MAX_ANSWER_BODY
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        kept = [await send(http, peer.url) for _ in range(2)]
        assert transport.opened == 1
        peer.body += b"x"
        cut = [await send(http, peer.url) for _ in range(2)]
    assert [r.outcome for r in kept] == ["delivered"] * 2
    assert [r.outcome for r in cut] == ["retry"] * 2
    # the first cut answer was on the kept connection; neither was put back afterwards
    assert transport.opened == peer.connections == 2


async def test_interim_answers_are_skipped_and_the_connection_kept(
    peer: Receiver, via: str
) -> None:
    peer.interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        results = [await send(http, peer.url) for _ in range(2)]
    assert [(r.outcome, r.response_excerpt) for r in results] == [("delivered", '{"ok":true}')] * 2
    assert transport.opened == 1


async def test_a_body_that_ends_with_the_connection_is_read_and_not_kept(via: str) -> None:
    closing = Receiver(until_close=True, body=b"thanks, bye")
    await closing.start()
    transport = KeyedTransport(ssl.create_default_context())
    try:
        async with using(transport, via) as http:
            results = [await send(http, closing.url) for _ in range(2)]
    finally:
        await closing.stop()
    assert [(r.outcome, r.response_excerpt) for r in results] == [("delivered", "thanks, bye")] * 2
    assert transport.opened == closing.connections == 2


async def test_bytes_nobody_asked_for_retire_a_kept_connection(peer: Receiver, via: str) -> None:
    """A receiver that says more after its answer (at once, or later on the idle connection)
    must not have that taken for the answer to the next request."""
    peer.unsolicited = b"HTTP/1.1 500 Not Yours\r\nContent-Length: 0\r\n\r\n"
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        first = await send(http, peer.url)
        async with asyncio.timeout(2):
            # until the extra bytes reached the kept connection (no event tells that)
            while transport.idle:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        peer.unsolicited = b""
        second = await send(http, peer.url)
    assert [(r.outcome, r.status_code) for r in (first, second)] == [("delivered", 200)] * 2
    assert transport.opened == peer.connections == 2


async def test_a_tls_connection_is_never_reused_for_another_name(tmp_path: Path, via: str) -> None:
    """Two names on one checked address: the connection verified for the first name is not
    handed to the second; a new handshake presents the second name (whose certificate this
    server does not have, so the second delivery fails verification instead of riding along)."""
    tls = make_tls(tmp_path, "hooks.test")
    server_names: list[str | None] = []

    def note_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        server_names.append(name)

    tls.server.sni_callback = note_sni
    peer = Receiver(keep_alive=True, tls=tls.server)
    await peer.start()
    transport = KeyedTransport(tls.client)
    try:
        async with using(transport, via) as http:
            first = await send(
                http, f"https://hooks.test:{peer.port}/", resolver_answer="127.0.0.1"
            )
            again = await send(
                http, f"https://hooks.test:{peer.port}/", resolver_answer="127.0.0.1"
            )
            other = await send(
                http, f"https://other.test:{peer.port}/", resolver_answer="127.0.0.1"
            )
    finally:
        await peer.stop()
    assert (first.outcome, again.outcome) == ("delivered", "delivered")
    assert other.outcome == "retry"
    assert other.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in other.error
    assert server_names == ["hooks.test", "other.test"]
    assert [r.headers["host"] for r in peer.received] == [f"hooks.test:{peer.port}"] * 2


async def test_no_proxy_from_the_environment_is_used(
    peer: Receiver, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        assert (await send(http, peer.url)).outcome == "delivered"
    assert len(peer.received) == 1


async def test_a_closed_transport_refuses_and_drops_its_connections(
    peer: Receiver, via: str
) -> None:
    transport = KeyedTransport(ssl.create_default_context())
    async with using(transport, via) as http:
        assert (await send(http, peer.url)).outcome == "delivered"
        await transport.aclose()
        result = await send(http, peer.url)
    assert result.outcome == "retry"
    assert result.error is not None
    assert result.error.startswith("ConnectError")
    assert len(peer.received) == 1
