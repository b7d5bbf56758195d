"""deliver() against real receivers on 127.0.0.1, started and stopped by each test."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from bankhub.webhooks.sender import (
    EXCERPT_BYTES,
    MAX_ANSWER_BODY,
    AttemptResult,
    deliver,
    parse_retry_after,
)
from bankhub.webhooks.signing import new_secret, webhook_headers
from bankhub.webhooks.ssrf import CheckedTargets
from bankhub.webhooks.transport import KeyedTransport
from tests.support.raw_http import Receiver
from tests.webhooks.tls_material import make_tls

BODY = json.dumps({"type": "accounts.updated", "data": {"account_id": "ac_1"}}).encode()
SECRET = new_secret()

MakeReceiver = Callable[..., Awaitable[Receiver]]


Http = httpx.AsyncClient | KeyedTransport


@pytest.fixture(params=["httpx", "keyed"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[Http]:
    """Every sender test runs with httpx's own pool (connections closed after each request) and
    with the runner's KeyedTransport (posted to directly, connections kept)."""
    if request.param == "keyed":
        transport = KeyedTransport(ssl.create_default_context())
        yield transport
        await transport.aclose()
        return
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[MakeReceiver]:
    started: list[Receiver] = []

    async def make(**kwargs: Any) -> Receiver:
        peer = await Receiver(**kwargs).start()
        started.append(peer)
        return peer

    yield make
    for peer in started:
        await peer.stop()


def headers() -> dict[str, str]:
    return webhook_headers("msg_abc", int(time.time()), BODY, [SECRET])


async def send(
    http: Http, url: str, *, limit: float = 5.0, allow_private: bool = True
) -> AttemptResult:
    return await deliver(
        http,
        url,
        BODY,
        headers(),
        allow_private=allow_private,
        allow_http=True,
        timeout=limit,
        keep_alive=isinstance(http, KeyedTransport),
    )


async def test_200_is_delivered_signed_and_sent_to_the_checked_address(
    http: Http, receiver: MakeReceiver
) -> None:
    peer = await receiver(body=b'{"ok": true}')
    result = await send(http, peer.url + "/in/hook?tenant=1")
    assert result.outcome == "delivered"
    assert (result.status_code, result.error, result.retry_after) == (200, None, None)
    assert result.response_excerpt == '{"ok": true}'
    assert 0 <= result.duration_ms < 5000
    [request] = peer.received
    assert (request.method, request.target, request.body) == ("POST", "/in/hook?tenant=1", BODY)
    assert request.headers["host"] == f"127.0.0.1:{peer.port}"
    assert request.headers["user-agent"] == "bankhub-webhooks/1"
    assert request.headers["content-type"] == "application/json"
    # httpx's pool is keyed by address only: its connections must not be kept
    keyed = isinstance(http, KeyedTransport)
    assert request.headers["connection"] == ("keep-alive" if keyed else "close")
    assert request.headers["accept-encoding"] == "identity"
    Webhook(SECRET).verify(request.body, request.headers)


async def test_localhost_name_keeps_its_host_header(http: Http, receiver: MakeReceiver) -> None:
    peer = await receiver()
    result = await deliver(
        http,
        f"http://localhost:{peer.port}/h",
        BODY,
        headers(),
        allow_private=True,
        allow_http=True,
        timeout=5,
        resolver=lambda host, port: _answer(["127.0.0.1"]),
    )
    assert result.outcome == "delivered"
    assert peer.received[0].headers["host"] == f"localhost:{peer.port}"


async def _answer(addresses: list[str]) -> list[str]:
    return addresses


async def test_kept_targets_resolve_a_busy_receiver_once_and_again_after_it_moved(
    http: Http, receiver: MakeReceiver
) -> None:
    peer = await receiver()
    # the name first points at 127.0.0.2, where nothing listens (the receiver moved)
    answers, asked = ["127.0.0.2"], []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(answers)

    targets = CheckedTargets(resolver=resolve)
    url = f"http://receiver.test:{peer.port}/h"

    async def attempt() -> AttemptResult:
        return await deliver(
            http,
            url,
            BODY,
            headers(),
            allow_private=True,
            allow_http=True,
            timeout=5,
            keep_alive=isinstance(http, KeyedTransport),
            targets=targets,
        )

    refused = await attempt()
    assert refused.outcome == "retry"
    answers[:] = ["127.0.0.1"]
    # the address that did not answer was forgotten: the next attempt asks the resolver again
    for _ in range(3):
        assert (await attempt()).outcome == "delivered"
    assert len(asked) == 2
    assert len(peer.received) == 3
    assert peer.received[0].headers["host"] == f"receiver.test:{peer.port}"


async def test_500_is_retried(http: Http, receiver: MakeReceiver) -> None:
    peer = await receiver(status=500, reason="Internal Server Error", body=b"boom")
    result = await send(http, peer.url)
    assert (result.outcome, result.status_code, result.error) == ("retry", 500, "status 500")
    assert result.response_excerpt == "boom"


async def test_a_delivered_attempt_is_logged_at_debug_one_that_failed_at_info(
    http: Http, receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A line per delivered attempt at ``info`` repeated the delivery log at the rate of the
    deliveries (and cost the worker a fifth of its throughput); failures stay at ``info``."""
    ok = await receiver()
    failing = await receiver(status=500, reason="Internal Server Error")
    with caplog.at_level(logging.DEBUG, logger="bankhub.webhooks"):
        await send(http, ok.url)
        await send(http, failing.url)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bankhub.webhooks"]
    assert lines == [
        (logging.DEBUG, "webhook attempt: delivered"),
        (logging.INFO, "webhook attempt: retry"),
    ]


async def test_429_retry_after_seconds(http: Http, receiver: MakeReceiver) -> None:
    peer = await receiver(status=429, reason="Too Many Requests", headers={"Retry-After": "7"})
    result = await send(http, peer.url)
    assert (result.outcome, result.status_code, result.retry_after) == ("retry", 429, 7.0)


async def test_503_retry_after_http_date(http: Http, receiver: MakeReceiver) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    peer = await receiver(
        status=503,
        reason="Service Unavailable",
        headers={"Retry-After": format_datetime(when, usegmt=True)},
    )
    result = await send(http, peer.url)
    assert (result.outcome, result.status_code) == ("retry", 503)
    assert result.retry_after is not None
    assert 110 <= result.retry_after <= 121


async def test_retry_after_ignored_on_other_statuses(http: Http, receiver: MakeReceiver) -> None:
    peer = await receiver(status=500, reason="Oops", headers={"Retry-After": "7"})
    assert (await send(http, peer.url)).retry_after is None


async def test_410_is_gone(http: Http, receiver: MakeReceiver) -> None:
    peer = await receiver(status=410, reason="Gone")
    result = await send(http, peer.url)
    assert (result.outcome, result.status_code) == ("gone", 410)


async def test_redirect_is_not_followed(http: Http, receiver: MakeReceiver) -> None:
    elsewhere = await receiver()
    peer = await receiver(status=302, reason="Found", headers={"Location": elsewhere.url + "/x"})
    result = await send(http, peer.url)
    assert (result.outcome, result.status_code) == ("retry", 302)
    assert result.error == "redirect not followed (status 302)"
    assert len(peer.received) == 1
    assert elsewhere.connections == 0
    assert elsewhere.received == []


async def test_silent_receiver_times_out(http: Http, receiver: MakeReceiver) -> None:
    peer = await receiver(hang=True)
    started = time.monotonic()
    result = await send(http, peer.url, limit=0.5)
    elapsed = time.monotonic() - started
    assert result.outcome == "retry"
    assert result.status_code is None
    assert result.error is not None
    assert "Timeout" in result.error
    assert 0.4 <= elapsed < 2.0
    assert len(peer.received) == 1


async def test_connection_refused_is_retried(http: Http) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await send(http, f"http://127.0.0.1:{port}/")
    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error is not None
    assert result.error.startswith("ConnectError")


async def test_a_body_up_to_the_read_limit_is_read_to_its_end(
    http: Http, receiver: MakeReceiver
) -> None:
    peer = await receiver(body=b"x" * MAX_ANSWER_BODY)
    result = await send(http, peer.url)
    assert (result.outcome, result.error) == ("delivered", None)
    assert result.response_excerpt == "x" * EXCERPT_BYTES


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_read_limit_fails_the_attempt_quickly(
    http: Http, receiver: MakeReceiver, chunked: bool
) -> None:
    """Announced (Content-Length) or not (chunks), a body past the limit is not read on."""
    peer = await receiver(body=b"x" * (10 * 1024 * 1024), chunked=chunked, chunk_size=64 * 1024)
    started = time.monotonic()
    result = await send(http, peer.url)
    assert time.monotonic() - started < 2.0
    assert (result.outcome, result.status_code) == ("retry", 200)
    assert result.error is not None
    if chunked:
        assert result.error == (
            "the answer's body goes on past the 1024 KiB bankhub reads (status 200)"
        )
        assert result.response_excerpt == "x" * EXCERPT_BYTES
    else:
        assert result.error == (
            f"the answer announces a body of {10 * 1024 * 1024} bytes, "
            "more than the 1024 KiB bankhub reads (status 200)"
        )
        assert result.response_excerpt == ""


async def test_non_utf8_excerpt_is_replaced_not_raised(http: Http, receiver: MakeReceiver) -> None:
    peer = await receiver(body=b"\xff\xfe ok")
    result = await send(http, peer.url)
    assert result.response_excerpt == "\ufffd\ufffd ok"


async def test_private_target_is_rejected_without_connecting(
    http: Http, receiver: MakeReceiver
) -> None:
    peer = await receiver()
    result = await send(http, peer.url, allow_private=False)
    assert result.outcome == "rejected"
    assert result.status_code is None
    assert result.error is not None
    assert "loopback" in result.error
    assert peer.connections == 0


async def test_name_resolving_private_is_rejected_before_any_request() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request may be sent, got {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        result = await deliver(
            client,
            "https://hooks.partner.example/in",
            BODY,
            headers(),
            allow_private=False,
            allow_http=False,
            timeout=5,
            resolver=lambda host, port: _answer(["93.184.216.34", "10.0.0.8"]),
        )
    assert result.outcome == "rejected"
    assert result.error is not None
    assert "10.0.0.8" in result.error


async def test_https_goes_to_the_checked_address_with_sni_and_host() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        result = await deliver(
            client,
            "https://hooks.partner.example/in?x=1",
            BODY,
            {**headers(), "Host": "evil.example"},
            allow_private=False,
            allow_http=False,
            timeout=5,
            resolver=lambda host, port: _answer(["2606:2800:220:1:248:1893:25c8:1946"]),
        )
    assert result.outcome == "delivered"
    [request] = seen
    assert str(request.url) == "https://[2606:2800:220:1:248:1893:25c8:1946]/in?x=1"
    assert request.headers["host"] == "hooks.partner.example"
    assert request.extensions["sni_hostname"] == "hooks.partner.example"
    assert request.headers["webhook-id"] == "msg_abc"


async def test_dns_failure_is_retried() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    async with httpx.AsyncClient() as client:
        result = await deliver(
            client,
            "https://hooks.partner.example/",
            BODY,
            headers(),
            allow_private=False,
            allow_http=False,
            timeout=5,
            resolver=fail,
        )
    assert result.outcome == "retry"
    assert result.error is not None
    assert result.error.startswith("gaierror")


async def test_slow_resolver_is_bounded_by_the_timeout() -> None:
    async def stall(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        return []

    started = time.monotonic()
    async with httpx.AsyncClient() as client:
        result = await deliver(
            client,
            "https://hooks.partner.example/",
            BODY,
            headers(),
            allow_private=False,
            allow_http=False,
            timeout=0.2,
            resolver=stall,
        )
    assert result.outcome == "retry"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("999999999", 86_400.0),
        ("Fri, 20 Nov 2026 09:02:00 GMT", 120.0),
        ("Fri, 20 Nov 2026 08:00:00 GMT", 0.0),
        ("Fri, 20 Nov 2026 09:01:00 -0000", 60.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize(
    ("cert_name", "outcome"), [("hooks.test", "delivered"), ("other.test", "retry")]
)
async def test_tls_is_verified_against_the_url_name_not_the_address(
    tmp_path: Path, receiver: MakeReceiver, cert_name: str, outcome: str, keyed: bool
) -> None:
    tls = make_tls(tmp_path, cert_name)
    server_names: list[str | None] = []

    def note_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        server_names.append(name)

    tls.server.sni_callback = note_sni
    peer = await receiver(tls=tls.server)
    client: Http = (
        KeyedTransport(tls.client)
        if keyed
        else httpx.AsyncClient(verify=tls.client, trust_env=False)
    )
    try:
        result = await deliver(
            client,
            f"https://hooks.test:{peer.port}/in",
            BODY,
            headers(),
            allow_private=True,
            allow_http=False,
            timeout=5,
            resolver=lambda host, port: _answer(["127.0.0.1"]),
            keep_alive=keyed,
        )
    finally:
        await client.aclose()
    assert server_names == ["hooks.test"]
    assert result.outcome == outcome
    if outcome == "delivered":
        assert peer.received[0].headers["host"] == f"hooks.test:{peer.port}"
    else:
        assert result.error is not None
        assert "CERTIFICATE_VERIFY_FAILED" in result.error
        assert peer.received == []
