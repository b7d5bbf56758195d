"""The sandbox connector keeps the shared connector contract, for every scenario that logs in."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bankhub.catalogue import default_catalogue
from bankhub.connectors.base import (
    Answer,
    ConnectorContext,
    Interaction,
    MemoryStateStore,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    NeedsRedirect,
)
from bankhub.connectors.registry import ConnectorRegistry, default_registry
from bankhub.connectors.sandbox import SandboxConnector, bank
from bankhub.connectors.testing import ContractCase, ContractViolation, check_contract


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _case(username: str, service_id: int, http: httpx.AsyncClient) -> ContractCase:
    service = default_catalogue().get(service_id)
    assert service is not None
    clock = Clock()

    def build(store: MemoryStateStore) -> SandboxConnector:
        context = ConnectorContext(
            institution={**service.params, "slug": service.slug, "name": service.name},
            http=http,
            state=store,
            clock=clock,
            return_url="http://127.0.0.1/v2/connect/return",
            public_url="http://127.0.0.1",
            options={"decoupled_delay_seconds": 2.0},
        )
        return SandboxConnector(context)

    async def respond(interaction: Interaction) -> Answer:
        if isinstance(interaction, NeedsCode):
            return Answer("code", "blue" if not interaction.secret else "123456")
        if isinstance(interaction, NeedsChoice):
            return Answer("choice", interaction.options[0].id)
        if isinstance(interaction, NeedsRedirect):
            request_id = parse_qs(urlsplit(interaction.url).query)["request"][0]
            return Answer(
                "redirect",
                params={"request": request_id, "code": bank.consent_code(request_id)},
            )
        if isinstance(interaction, NeedsDecoupledApproval):
            clock.now += timedelta(seconds=3)
            return Answer.poll()
        raise AssertionError(f"unexpected {interaction!r}")

    return ContractCase(
        name=username,
        build=build,
        credentials={"username": username, "password": "pass_good"},
        respond=respond,
        secrets=("pass_good", "123456"),
    )


@pytest.mark.parametrize(
    "username",
    [
        "user_good",
        "user_otp",
        "user_question",
        "user_redirect",
        "user_decoupled",
        "user_dynamic",
        "user_remint",
        "user_consent_short",
    ],
)
@pytest.mark.parametrize("service_id", [1, 3])
async def test_sandbox_keeps_the_contract(username: str, service_id: int) -> None:
    async with httpx.AsyncClient() as http:
        report = await check_contract(_case(username, service_id, http))
    assert report.accounts
    assert report.identity == f"user:{username}"
    assert report.steps == {"user_otp": 1, "user_question": 2, "user_redirect": 1}.get(
        username, report.steps
    )


async def test_the_contract_catches_a_connector_that_leaks_the_password() -> None:
    class Leaky(SandboxConnector):
        async def authenticate(self, credentials: Mapping[str, str]) -> None:
            await super().authenticate(credentials)
            state = self.context.state.load()
            state["remembered"] = credentials["password"]
            self.context.state.save(state)

    async with httpx.AsyncClient() as http:
        case = _case("user_good", 1, http)
        inner = case.build
        case.build = lambda store: Leaky(inner(store).context)
        with pytest.raises(ContractViolation, match="credential"):
            await check_contract(case)


def test_registry_has_the_builtins_and_reads_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = default_registry()
    assert "sandbox" in registry.ids()

    class EntryPoint:
        name = "acme"

        def load(self) -> type[SandboxConnector]:
            return SandboxConnector

    import bankhub.connectors.registry as module

    monkeypatch.setattr(
        module,
        "entry_points",
        lambda group: [EntryPoint()] if group == module.ENTRY_POINT_GROUP else [],
    )
    extended = ConnectorRegistry()
    extended.load_entry_points()
    assert extended.ids() == ["acme"]


async def test_a_bank_may_keep_less_history() -> None:
    async with httpx.AsyncClient() as http:
        case = _case("user_good", 1, http)
        inner = case.build

        def short(store: MemoryStateStore) -> SandboxConnector:
            connector: SandboxConnector = inner(store)
            connector.context.institution = {**connector.context.institution, "history_days": 30}
            return connector

        case.build = short
        report = await check_contract(case)
    newest = max(r.booking_date for rows in report.transactions.values() for r in rows)
    oldest = min(r.booking_date for rows in report.transactions.values() for r in rows)
    assert (newest - oldest).days <= 31
