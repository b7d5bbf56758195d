"""The SimpleFIN connector against a loopback SimpleFIN server."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    ConnectorContext,
    ConsentExpired,
    InvalidCredentials,
    MemoryStateStore,
    NoticesCapability,
    ProviderUnavailable,
    TransactionRecord,
    TransactionStatus,
)
from bankhub.connectors.registry import default_registry
from bankhub.connectors.simplefin import SimplefinConnector
from bankhub.connectors.testing import ContractCase, check_contract
from tests.connectors.simplefin.bridge import Bridge, Holder, running_bridge

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def org(domain: str, name: str | None = None) -> dict[str, str]:
    data = {"domain": domain, "sfin-url": f"https://sfin.{domain}"}
    if name:
        data["name"] = name
    return data


def holder() -> Holder:
    return Holder(
        accounts=[
            {
                "org": org("firstbank.example", "First Bank"),
                "id": "ACT-1",
                "name": "Everyday Checking",
                "currency": "USD",
                "balance": "1520.33",
                "available-balance": "1490.33",
                "balance-date": ts(2026, 3, 10, 6),
                "transactions": [
                    {
                        "id": "T1",
                        "posted": ts(2026, 2, 3, 10),
                        "amount": "-45.10",
                        "description": "GROCER 123",
                        "payee": "Corner Grocer",
                        "memo": "card 1234",
                    },
                    {
                        "id": "T2",
                        "posted": ts(2026, 2, 20),
                        "amount": "2500.00",
                        "description": "PAYROLL ACME",
                    },
                    {
                        "id": "T3",
                        "posted": ts(2026, 3, 4, 8, 30),
                        "amount": "-12.99",
                        "description": "STREAMING",
                        "transacted_at": ts(2026, 3, 3, 20),
                    },
                    {
                        "id": "T4",
                        "posted": 0,
                        "pending": True,
                        "amount": "-7.25",
                        "description": "COFFEE SHOP",
                        "transacted_at": ts(2026, 3, 9, 15),
                    },
                ],
            },
            {
                "org": org("cardco.example"),
                "id": "ACT-2",
                "name": "Rewards Card",
                "currency": "CAD",
                "balance": "-310.04",
                "balance-date": ts(2026, 3, 9),
                "transactions": [
                    {
                        "id": "C1",
                        "posted": ts(2026, 1, 15),
                        "amount": "-310.04",
                        "description": "HOTEL",
                    },
                    {"id": "C2", "posted": ts(2026, 3, 1), "amount": 0.1, "description": "ADJ"},
                ],
            },
        ]
    )


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    with running_bridge() as running:
        yield running


def connector(
    http: httpx.AsyncClient,
    store: MemoryStateStore | None = None,
    *,
    params: dict[str, Any] | None = None,
    insecure: bool = True,
) -> SimplefinConnector:
    context = ConnectorContext(
        institution={"slug": "simplefin-bridge", "name": "SimpleFIN Bridge", **(params or {})},
        http=http,
        state=store or MemoryStateStore(),
        clock=lambda: NOW,
        options={"allow_insecure_http": insecure},
    )
    return SimplefinConnector(context)


async def linked(http: httpx.AsyncClient, bridge: Bridge, data: Holder) -> SimplefinConnector:
    sfin = connector(http)
    await sfin.authenticate({"setup_token": bridge.setup_token(data)})
    return sfin


async def test_claim_keeps_the_access_url_and_reads_accounts(bridge: Bridge) -> None:
    token = bridge.setup_token(holder())
    store = MemoryStateStore()
    async with httpx.AsyncClient() as http:
        sfin = connector(http, store)
        await sfin.authenticate({"setup_token": token})
        accounts = await sfin.fetch_accounts()

    state = store.load()
    assert list(state) == ["access_url"]
    assert state["access_url"].startswith("http://")
    assert "@127.0.0.1:" in state["access_url"]
    assert token not in str(state)
    assert [(s.method, s.path) for s in bridge.seen] == [
        ("POST", f"/simplefin/claim/{base64.b64decode(token).decode().rsplit('/', 1)[1]}"),
        ("GET", "/simplefin/accounts"),
    ]
    assert bridge.seen[1].authorized
    assert bridge.seen[1].query == {"balances-only": ["1"]}
    assert accounts == [
        AccountRecord(
            bank_id="ACT-1",
            name="Everyday Checking (First Bank)",
            type=AccountType.OTHER,
            currency="USD",
            balance=Decimal("1520.33"),
            available_balance=Decimal("1490.33"),
        ),
        AccountRecord(
            bank_id="ACT-2",
            name="Rewards Card (cardco.example)",
            type=AccountType.OTHER,
            currency="CAD",
            balance=Decimal("-310.04"),
        ),
    ]


async def test_transactions_booked_and_pending_with_exact_values(bridge: Bridge) -> None:
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, holder())
        checking, card = await sfin.fetch_accounts()
        rows = await sfin.fetch_transactions(checking, None, None)
        card_rows = await sfin.fetch_transactions(card, None, None)

    assert rows == [
        TransactionRecord(
            bank_id="T1",
            booking_date=date(2026, 2, 3),
            amount=Decimal("-45.10"),
            currency="USD",
            description="GROCER 123",
            merchant="Corner Grocer",
            meta={"memo": "card 1234"},
        ),
        TransactionRecord("T2", date(2026, 2, 20), Decimal("2500.00"), "USD", "PAYROLL ACME"),
        TransactionRecord(
            bank_id="T3",
            booking_date=date(2026, 3, 4),
            amount=Decimal("-12.99"),
            currency="USD",
            description="STREAMING",
            value_date=date(2026, 3, 3),
            meta={"transacted_at": "2026-03-03T20:00:00+00:00"},
        ),
        TransactionRecord(
            bank_id="T4",
            booking_date=date(2026, 3, 9),
            amount=Decimal("-7.25"),
            currency="USD",
            description="COFFEE SHOP",
            status=TransactionStatus.PENDING,
            meta={"transacted_at": "2026-03-09T15:00:00+00:00"},
        ),
    ]
    # a JSON number is read from its text, never through a float
    assert [(r.bank_id, r.amount, r.currency) for r in card_rows] == [
        ("C1", Decimal("-310.04"), "CAD"),
        ("C2", Decimal("0.1"), "CAD"),
    ]
    # one bridge request serves both accounts of the same window
    reads = bridge.accounts_requests()
    assert len(reads) == 2
    assert reads[1].query == {"pending": ["1"]}


async def test_date_filters_are_epoch_seconds_with_an_exclusive_end(bridge: Bridge) -> None:
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, holder())
        checking, _ = await sfin.fetch_accounts()
        rows = await sfin.fetch_transactions(checking, date(2026, 2, 20), date(2026, 3, 4))

    query = bridge.accounts_requests()[-1].query
    assert query == {
        "pending": ["1"],
        "start-date": [str(ts(2026, 2, 20))],
        "end-date": [str(ts(2026, 3, 5))],
    }
    assert [r.bank_id for r in rows] == ["T2", "T3"]


async def test_pending_rows_are_asked_for_and_filtered_by_the_day_they_happened(
    bridge: Bridge,
) -> None:
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, holder())
        checking, _ = await sfin.fetch_accounts()
        before = await sfin.fetch_transactions(checking, date(2026, 3, 5), date(2026, 3, 8))
        on_the_day = await sfin.fetch_transactions(checking, date(2026, 3, 9), None)

    assert before == []
    assert [(r.bank_id, r.status) for r in on_the_day] == [("T4", TransactionStatus.PENDING)]
    assert all(s.query.get("pending") == ["1"] for s in bridge.accounts_requests()[1:])


async def test_bridge_errors_reach_the_partner_as_notices(bridge: Bridge) -> None:
    data = holder()
    data.errors = ["Connection to First Bank may need attention.\x07", "  "]
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, data)
        accounts = await sfin.fetch_accounts()
    assert isinstance(sfin, NoticesCapability)
    assert len(accounts) == 2
    assert sfin.notices() == ["Connection to First Bank may need attention."]


async def test_errors_without_accounts_fail_with_the_bridge_message(bridge: Bridge) -> None:
    data = Holder(accounts=[], errors=["You must reauthenticate with First Bank."])
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, data)
        with pytest.raises(ProviderUnavailable) as failure:
            await sfin.fetch_accounts()
    assert failure.value.message == (
        "The SimpleFIN Bridge returned no accounts and reported: "
        '"You must reauthenticate with First Bank."'
    )
    assert sfin.notices() == ["You must reauthenticate with First Bank."]


async def test_a_setup_token_claimed_twice_is_refused(bridge: Bridge) -> None:
    token = bridge.setup_token(holder())
    async with httpx.AsyncClient() as http:
        await connector(http).authenticate({"setup_token": token})
        second = MemoryStateStore()
        with pytest.raises(InvalidCredentials, match="already claimed") as failure:
            await connector(http, second).authenticate({"setup_token": token})
    assert token not in failure.value.message
    assert second.load() == {}


async def test_revoked_access_is_an_expired_consent(bridge: Bridge) -> None:
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, holder())
        access_url = sfin.context.state.load()["access_url"]
        bridge.revoke_all()
        again = connector(http, MemoryStateStore(sfin.context.state.load()))
        await again.open_session()
        with pytest.raises(ConsentExpired, match="revoked") as failure:
            await again.fetch_accounts()
    password = access_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in str(failure.value)
    assert access_url not in str(failure.value)


async def test_payment_required_and_server_errors_are_unavailable(bridge: Bridge) -> None:
    data = holder()
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, data)
        data.status = 402
        with pytest.raises(ProviderUnavailable, match=r"requires payment \(HTTP 402\)"):
            await sfin.fetch_accounts()
        data.status = 503
        with pytest.raises(ProviderUnavailable, match="HTTP 503"):
            await sfin.fetch_accounts()


async def test_a_slow_bridge_is_unavailable(bridge: Bridge) -> None:
    data = holder()
    async with httpx.AsyncClient(timeout=0.3) as http:
        sfin = await linked(http, bridge, data)
        data.delay = 1.0
        with pytest.raises(ProviderUnavailable, match="did not answer in time"):
            await sfin.fetch_accounts()


async def test_custom_currencies_are_mapped_or_skipped_with_a_notice(bridge: Bridge) -> None:
    miles = "https://www.example.com/flight-miles"
    data = holder()
    data.accounts.append(
        {
            "org": org("air.example"),
            "id": "MILES",
            "name": "Flyer Miles",
            "currency": miles,
            "balance": "52000",
            "balance-date": ts(2026, 3, 1),
        }
    )
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, data)
        assert [a.bank_id for a in await sfin.fetch_accounts()] == ["ACT-1", "ACT-2"]
        assert sfin.notices() == [
            f"The account 'Flyer Miles' is held in a custom currency ({miles}) that bankhub "
            "cannot show; it was skipped."
        ]
        mapped = connector(
            http,
            MemoryStateStore(sfin.context.state.load()),
            params={"custom_currencies": {miles: "XXX"}},
        )
        accounts = await mapped.fetch_accounts()
    assert (accounts[2].bank_id, accounts[2].currency, accounts[2].balance) == (
        "MILES",
        "XXX",
        Decimal("52000"),
    )
    assert mapped.notices() == []


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "Enter the SimpleFIN setup token"),
        ("not base64 at all!", "not Base64 text"),
        (base64.b64encode(b"\xff\xfe").decode(), "does not hold a claim URL"),
        (base64.b64encode(b"ftp://bridge.example/claim/x").decode(), "does not hold a claim URL"),
    ],
)
async def test_a_malformed_setup_token_is_refused_clearly(token: str, message: str) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(InvalidCredentials, match=message):
            await connector(http).authenticate({"setup_token": token})


async def test_plain_http_is_refused_unless_allowed(bridge: Bridge) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(InvalidCredentials, match="only used over HTTPS"):
            await connector(http, insecure=False).authenticate(
                {"setup_token": bridge.setup_token(holder())}
            )
    assert bridge.seen == []


async def test_open_session_without_saved_access_asks_for_a_new_token() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConsentExpired, match="new setup token"):
            await connector(http).open_session()


async def test_the_access_url_never_reaches_the_logs(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as http:
        sfin = await linked(http, bridge, holder())
        accounts = await sfin.fetch_accounts()
        await sfin.fetch_transactions(accounts[0], None, None)
    credential = next(iter(bridge.credentials.values()))
    assert "/simplefin/accounts" in caplog.text
    assert credential.password not in caplog.text


async def test_simplefin_keeps_the_contract(bridge: Bridge) -> None:
    token = bridge.setup_token(holder())
    async with httpx.AsyncClient() as http:
        report = await check_contract(
            ContractCase(
                name="simplefin",
                build=lambda store: connector(http, store),
                credentials={"setup_token": token},
                secrets=(token,),
            )
        )
    assert [a.bank_id for a in report.accounts] == ["ACT-1", "ACT-2"]
    assert report.steps == 0
    assert report.identity is None  # an access URL names no user: the accounts decide
    assert {k: len(v) for k, v in report.transactions.items()} == {"ACT-1": 4, "ACT-2": 2}


def test_simplefin_is_registered() -> None:
    assert default_registry().info("simplefin") is SimplefinConnector.info
