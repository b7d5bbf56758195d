"""Creating a webhook endpoint: outside dev its URL is https and its host resolves, now, to public
addresses only (S39); the sender checks again before every delivery, since DNS can change."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from sqlalchemy import func, select

from bankhub.errors import DomainError, ErrorCode
from bankhub.partners.models import App
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookEndpoint
from bankhub.webhooks.sender import deliver
from bankhub.webhooks.signing import webhook_headers
from bankhub.webhooks.ssrf import Resolver
from tests.conftest import Harness

PUBLIC = "93.184.216.34"
NAME = "https://hooks.partner.test/in"


def answering(*addresses: str) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def never_asked(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} must not be resolved")


async def _app_id(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        return (
            await session.execute(select(App.id).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()


async def _create(
    h: Harness, url: str, *, dev: bool, resolver: Resolver
) -> webhooks.IssuedEndpoint:
    app_id = await _app_id(h)
    async with h.hub.db.transaction() as session:
        return await webhooks.create_endpoint(
            session,
            h.hub.keyring,
            h.clock(),
            app_id,
            url,
            allow_http=dev,
            allow_private=dev,
            resolver=resolver,
        )


async def _stored(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        return (
            await session.execute(select(func.count()).select_from(WebhookEndpoint))
        ).scalar_one()


@pytest.mark.parametrize(
    ("url", "answers", "reason"),
    [
        (NAME, ["10.0.0.5"], "hooks.partner.test resolves to 10.0.0.5, which is private"),
        (
            NAME,
            [PUBLIC, "127.0.0.1"],
            "hooks.partner.test resolves to 127.0.0.1, which is loopback",
        ),
        (NAME, ["169.254.169.254"], "resolves to 169.254.169.254, which is link-local"),
        (NAME, ["::ffff:10.1.2.3"], "embeds 10.1.2.3, which is private"),
        ("https://127.0.0.1/in", [], "127.0.0.1 resolves to 127.0.0.1, which is loopback"),
        ("https://[fe80::1]/in", [], "which is link-local"),
        ("https://[::ffff:127.0.0.1]/in", [], "embeds 127.0.0.1, which is loopback"),
        ("https://2130706433/in", [], "resolves to 127.0.0.1, which is loopback"),
        ("http://hooks.partner.test/in", [PUBLIC], "URL scheme must be https"),
    ],
)
async def test_outside_dev_an_unsafe_url_is_refused_and_nothing_is_stored(
    harness: Harness, url: str, answers: list[str], reason: str
) -> None:
    with pytest.raises(DomainError) as refused:
        await _create(harness, url, dev=False, resolver=answering(*answers))
    error = refused.value
    assert error.code == ErrorCode.DATA_INVALID
    assert error.message.startswith("webhook url refused: ")
    assert reason in error.message
    assert error.extra["url"] == url
    assert error.extra["problems"] == [
        f"url: {error.message.removeprefix('webhook url refused: ')}"
    ]
    assert await _stored(harness) == 0


async def test_outside_dev_a_host_that_does_not_resolve_is_refused(harness: Harness) -> None:
    async def unknown(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(DomainError) as refused:
        await _create(harness, NAME, dev=False, resolver=unknown)
    assert refused.value.message == (
        "webhook url refused: its host could not be resolved ([Errno -2] Name or service not known)"
    )
    assert await _stored(harness) == 0


async def test_a_resolver_that_does_not_answer_is_given_up_on() -> None:
    async def stall(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        return []

    started = time.monotonic()
    with pytest.raises(DomainError) as refused:
        await webhooks.check_endpoint_url(
            NAME, allow_http=False, allow_private=False, resolver=stall, resolve_seconds=0.05
        )
    assert time.monotonic() - started < 1.0
    assert refused.value.message == "webhook url refused: its host did not resolve within 0.05 s"


async def test_outside_dev_a_public_https_url_is_created_and_still_checked_at_delivery(
    harness: Harness,
) -> None:
    issued = await _create(harness, NAME, dev=False, resolver=answering(PUBLIC))
    assert issued.endpoint.url == NAME
    assert await _stored(harness) == 1
    # the name now points inside: the delivery is refused before any connection
    headers = webhook_headers("msg_1", int(time.time()), b"{}", [issued.secret])
    result = await deliver(
        harness.hub.webhook_transport,
        NAME,
        b"{}",
        headers,
        allow_private=False,
        allow_http=False,
        timeout=1,
        resolver=answering("10.0.0.5"),
    )
    assert (result.outcome, result.error) == (
        "rejected",
        "hooks.partner.test resolves to 10.0.0.5, which is private",
    )


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost:8080/in"])
async def test_dev_keeps_loopback_http_urls_without_resolving(harness: Harness, url: str) -> None:
    issued = await _create(harness, url, dev=True, resolver=never_asked)
    assert issued.endpoint.url == url


async def test_allow_private_follows_allow_http_when_not_given(harness: Harness) -> None:
    """Callers that only say ``allow_http`` (dev) keep dev's loopback; production's
    ``allow_http=False`` refuses it."""
    app_id = await _app_id(harness)
    async with harness.hub.db.transaction() as session:
        await webhooks.create_endpoint(
            session,
            harness.hub.keyring,
            harness.clock(),
            app_id,
            "http://127.0.0.1:9/h",
            allow_http=True,
        )
        with pytest.raises(DomainError):
            await webhooks.create_endpoint(
                session,
                harness.hub.keyring,
                harness.clock(),
                app_id,
                "https://127.0.0.1:9/h",
                allow_http=False,
            )
