"""The shared connector contract, and how the connector behaves when the bank does not answer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from bankhub.connectors.base import (
    Answer,
    Interaction,
    MemoryStateStore,
    NeedsChoice,
    ProviderUnavailable,
    SessionExpired,
)
from bankhub.connectors.fints import TanChallenge
from bankhub.connectors.testing import ContractCase, check_contract

from .conftest import Build, builder
from .dummy import GOOD_PIN, USER, DummyServer, login_tan


async def _respond(interaction: Interaction) -> Answer:
    if isinstance(interaction, NeedsChoice):
        return Answer("choice", interaction.options[-1].id)
    if isinstance(interaction, TanChallenge):
        return Answer("code", "123456")
    raise AssertionError(f"unexpected {interaction!r}")


@pytest.mark.parametrize(
    ("server", "steps"),
    [(None, 0), (login_tan(), 1), (login_tan(mechanisms="942:962"), 2)],
    indirect=["server"],
)
async def test_the_connector_keeps_the_contract(
    build: Build, server: DummyServer, steps: int
) -> None:
    # unattended=False: FinTS needs the PIN for every dialog, so open_session always raises
    # SessionExpired (the platform then logs in with the vault's PIN or asks the user);
    # test_open_session_is_session_expired_after_the_contract_login shows exactly that.
    case = ContractCase(
        name="fints-dummy",
        build=build,
        credentials={"user_id": USER, "pin": GOOD_PIN},
        respond=_respond,
        secrets=(GOOD_PIN, "123456"),
        unattended=False,
    )
    report = await check_contract(case)
    assert report.steps == steps
    assert report.identity == f"user:{USER}"
    assert [a.balance for a in report.accounts] == [Decimal("1423.60")]
    assert [len(rows) for rows in report.transactions.values()] == [3]


async def test_open_session_is_session_expired_after_the_contract_login(build: Build) -> None:
    store = MemoryStateStore()
    await check_contract(
        ContractCase(
            name="fints-dummy",
            build=lambda _: build(store),
            credentials={"user_id": USER, "pin": GOOD_PIN},
            unattended=False,
        )
    )
    with pytest.raises(SessionExpired, match="credential vault"):
        await build(MemoryStateStore(store.load())).open_session()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


async def test_a_bank_that_never_answers_is_unavailable_in_time(silent_port: int) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    async with httpx.AsyncClient() as http:
        build = builder(http, f"http://127.0.0.1:{silent_port}/", fints_timeout_seconds="0.5")
        connector = build(MemoryStateStore())
        running = asyncio.create_task(ticker())
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="cannot be reached"):
            await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
        elapsed = time.monotonic() - started
        running.cancel()
    assert 0.4 <= elapsed < 2.0
    # The event loop kept running while the worker thread waited for the bank.
    assert ticks >= 5


async def test_a_closed_port_is_unavailable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient() as http:
        connector = builder(http, f"http://127.0.0.1:{port}/")(MemoryStateStore())
        with pytest.raises(ProviderUnavailable, match="cannot be reached"):
            await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})


async def test_a_missing_product_id_is_named(http: httpx.AsyncClient) -> None:
    connector = builder(http, "http://127.0.0.1:9/", fints_product_id="")(MemoryStateStore())
    with pytest.raises(ProviderUnavailable, match="product id"):
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
