"""Receivers that answer to exhaust the worker: each attempt ends within the webhook timeout, the
worker's memory barely grows, and the attempt is a failure with a clear reason, retried on the
schedule. The receivers are real TCP servers (``tests/webhooks/hostile.py``)."""

from __future__ import annotations

import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from bankhub.jobs.runner import Runner
from bankhub.partners.models import App
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery
from bankhub.webhooks.sender import EXCERPT_BYTES, JITTER, RETRY_SCHEDULE, deliver
from bankhub.webhooks.signing import new_secret, webhook_headers
from bankhub.webhooks.transport import KeyedTransport
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.webhooks.hostile import BEHAVIOURS, HostileReceiver

TIMEOUT = 0.5
#: the runner's attempts share the loop with its database work: a little more room
RUNNER_TIMEOUT = 1.0
#: what one attempt may grow the process by (the reader this replaced grew it by hundreds of MB)
MEMORY_BOUND = 2 * 1024 * 1024
BODY = b'{"type": "login.status", "data": {"login_id": 1}}'


def expected(timeout: float) -> dict[str, tuple[int | None, str]]:
    """behaviour -> (the status bankhub records, how the recorded error starts)"""
    return {
        "negative-chunk-size": (
            200,
            "RemoteProtocolError: the answer is not HTTP/1.1: illegal chunk header",
        ),
        "huge-chunk-size": (200, "the answer's body goes on past the 1024 KiB bankhub reads"),
        "endless-chunks": (200, "the answer's body goes on past the 1024 KiB bankhub reads"),
        "tiny-chunks": (
            200,
            "RemoteProtocolError: the answer's body comes in more than 1024 pieces",
        ),
        "endless-headers": (
            None,
            "RemoteProtocolError: the answer's head goes on past 16 KiB without ending",
        ),
        "endless-interim-answers": (
            None,
            "RemoteProtocolError: more than 10 interim (1xx) answers",
        ),
        "huge-content-length": (
            200,
            "the answer announces a body of 99999999999999999999 bytes, "
            "more than the 1024 KiB bankhub reads",
        ),
        "absurd-content-length": (
            None,
            "RemoteProtocolError: the answer is not HTTP/1.1: bad Content-Length",
        ),
        "slowloris-body": (200, f"TimeoutError: the answer did not end within {timeout:g} s"),
        "no-answer": (None, f"TimeoutError: no answer within {timeout:g} s"),
        "never-ending-answer": (
            200,
            f"TimeoutError: the answer did not end within {timeout:g} s",
        ),
    }


def test_every_behaviour_has_an_expectation() -> None:
    assert set(expected(TIMEOUT)) == set(BEHAVIOURS)


@pytest.fixture
async def hostile() -> AsyncIterator[HostileReceiver]:
    receiver = HostileReceiver(tick=TIMEOUT / 20)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.mark.parametrize("via", ["direct", "httpx"])
@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
async def test_a_hostile_answer_costs_one_timeout_and_bounded_memory(
    hostile: HostileReceiver, behaviour: str, via: str
) -> None:
    """Posted as the runner posts (``direct``) and through the hub's httpx client wrapping the
    same transport."""
    transport = KeyedTransport(ssl.create_default_context())
    http: KeyedTransport | httpx.AsyncClient = transport
    if via == "httpx":
        http = httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)
    headers = webhook_headers("msg_1", int(time.time()), BODY, [new_secret()])
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        result = await deliver(
            http,
            hostile.url(behaviour),
            BODY,
            headers,
            allow_private=True,
            allow_http=True,
            timeout=TIMEOUT,
            keep_alive=True,
        )
        elapsed = time.monotonic() - started
        grown = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
        await http.aclose()
    status, reason = expected(TIMEOUT)[behaviour]
    print(f"{behaviour} via {via}: {elapsed * 1000:.0f} ms, {grown / 1024:.0f} KiB")
    # the slow ones would go on for ever if the timeout were per read
    assert elapsed < 2 * TIMEOUT, result
    assert grown < MEMORY_BOUND, f"{grown} bytes"
    assert (result.outcome, result.status_code) == ("retry", status), result
    assert result.error is not None
    assert result.error.startswith(reason), result.error
    assert len(result.error) <= 300
    assert len(result.response_excerpt) <= EXCERPT_BYTES
    # the connection was dropped, not kept: the receiver saw the hang-up, nothing is pooled
    await hostile.wait_for_hang_ups(1)
    assert transport.idle == 0
    assert hostile.paths == [behaviour]


@pytest.mark.parametrize("harness", [{"webhook_timeout_seconds": RUNNER_TIMEOUT}], indirect=True)
async def test_the_runner_records_each_hostile_answer_and_retries_on_schedule(
    harness: Harness, hostile: HostileReceiver
) -> None:
    """One endpoint per behaviour and one event: every attempt, made side by side, is logged
    as failed with its reason and a bounded excerpt, and is due again after the first step of
    the schedule; when the receiver behaves, the retries deliver with the same webhook-id."""
    h = harness
    async with h.hub.db.transaction() as session:
        app = (
            await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        endpoints = {
            (
                await webhooks.create_endpoint(
                    session, h.hub.keyring, h.clock(), app.id, hostile.url(name), allow_http=True
                )
            ).endpoint.id: name
            for name in BEHAVIOURS
        }
    await connect(h, "user_good")
    runner = Runner(h.hub)
    started = time.monotonic()
    assert (await runner.run_once()).deliveries == 0
    # side by side, not one after another
    assert time.monotonic() - started < 3 * RUNNER_TIMEOUT
    async with h.hub.db.transaction() as session:
        deliveries = list((await session.execute(select(WebhookDelivery))).scalars())
        attempts = {
            a.delivery_id: a for a in (await session.execute(select(WebhookAttempt))).scalars()
        }
    assert len(deliveries) == len(BEHAVIOURS)
    first_delay = RETRY_SCHEDULE[0]
    for delivery in deliveries:
        behaviour = endpoints[delivery.endpoint_id]
        status, reason = expected(RUNNER_TIMEOUT)[behaviour]
        attempt = attempts[delivery.id]
        assert (attempt.outcome, attempt.status_code) == ("retry", status), behaviour
        assert attempt.error is not None
        assert attempt.error.startswith(reason), (behaviour, attempt.error)
        assert len(attempt.response_excerpt) <= EXCERPT_BYTES
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert delivery.last_error == attempt.error
        wait = delivery.next_attempt_at - h.clock()
        low, high = first_delay * (1 - JITTER), first_delay * (1 + JITTER)
        assert timedelta(seconds=low) <= wait <= timedelta(seconds=high), behaviour

    hostile.behave = True
    h.clock.advance(seconds=first_delay * (1 - JITTER) - 0.5)
    assert (await runner.run_once()).deliveries == 0  # not due yet
    h.clock.advance(seconds=first_delay * 2 * JITTER + 1)
    delivered = (await runner.run_once()).deliveries
    async with h.hub.db.transaction() as session:
        errors = [d.last_error for d in (await session.execute(select(WebhookDelivery))).scalars()]
    assert delivered == len(BEHAVIOURS), errors
    first_ids = hostile.webhook_ids[: len(BEHAVIOURS)]
    assert sorted(hostile.webhook_ids[len(BEHAVIOURS) :]) == sorted(first_ids)
    assert len(set(first_ids)) == 1  # one event, one webhook-id for every endpoint
