"""The OFX Direct Connect connector against a loopback OFX server answering from the corpus."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import (
    AccountLocked,
    AccountRecord,
    AccountType,
    ConnectorContext,
    ConnectorFailure,
    InvalidCredentials,
    MemoryStateStore,
    NoticesCapability,
    PasswordExpired,
    ProviderUnavailable,
    SessionExpired,
    TransactionRecord,
)
from bankhub.connectors.ofxdirect import OfxDirectConnector
from bankhub.connectors.registry import default_registry
from bankhub.connectors.testing import ContractCase, check_contract
from bankhub.statements import parse_statement
from tests.connectors.ofxdirect.ofxserver import (
    OFX_MIME,
    OfxServer,
    Served,
    User,
    corpus,
    running_ofx_server,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
USER, PASSWORD = "alice", "s3cret&<pw"
CHECKING, EURO, CARD = "12300 000012345678", "999988", "1234123412341234"


@pytest.fixture
def server() -> Iterator[OfxServer]:
    with running_ofx_server() as running:
        running.users[USER] = User(
            PASSWORD,
            [
                Served.from_corpus("bank_medium.ofx", desc="Everyday Chequing"),
                Served.from_corpus("stmtrs_euro.ofx"),
                Served.from_corpus("anzcc.ofx", desc="Visa"),
            ],
        )
        yield running


def connector(
    http: httpx.AsyncClient,
    server: OfxServer,
    store: MemoryStateStore | None = None,
    *,
    version: int = 220,
    insecure: bool = True,
) -> OfxDirectConnector:
    params: dict[str, Any] = {
        "url": server.url,
        "org": "NCH",
        "fid": "1001",
        "bankid": "121099999",
        "ofx_version": version,
        "app_id": "QWIN",
        "app_version": "2700",
    }
    context = ConnectorContext(
        institution={**params, "slug": "ofx-test-bank", "name": "OFX Test Bank"},
        http=http,
        state=store or MemoryStateStore(),
        clock=lambda: NOW,
        options={"allow_insecure_http": insecure},
    )
    return OfxDirectConnector(context)


async def logged_in(http: httpx.AsyncClient, server: OfxServer) -> OfxDirectConnector:
    ofx = connector(http, server)
    await ofx.authenticate({"user_id": USER, "password": PASSWORD})
    return ofx


async def test_login_lists_accounts_with_corpus_balances(server: OfxServer) -> None:
    async with httpx.AsyncClient() as http:
        ofx = await logged_in(http, server)
        accounts = await ofx.fetch_accounts()

    assert accounts == [
        AccountRecord(
            bank_id=CHECKING,
            name="Everyday Chequing",
            type=AccountType.CURRENT,
            currency="CAD",
            balance=Decimal("382.34"),
            available_balance=Decimal("682.34"),
            number=CHECKING,
            balance_date=date(2009, 5, 23),  # LEDGERBAL DTASOF
        ),
        AccountRecord(
            bank_id=EURO,
            name="Checking …9988",
            type=AccountType.CURRENT,
            currency="USD",
            balance=Decimal("200.29"),
            available_balance=Decimal("200.29"),
            number=EURO,
            balance_date=date(2005, 10, 29),
        ),
        AccountRecord(
            bank_id=CARD,
            name="Visa",
            type=AccountType.CREDIT_CARD,
            currency="AUD",
            balance=Decimal("-123.45"),
            available_balance=Decimal("123.45"),
            number=CARD,
            balance_date=date(2017, 5, 10),
        ),
    ]
    first, *statements = server.seen
    assert first.kind == "acctinfo"
    assert (first.content_type, first.header) == (OFX_MIME, "OFXHEADER=200 VERSION 220")
    assert (first.userid, first.userpass) == (USER, PASSWORD)
    assert [(s.kind, s.bankid, s.acctid, s.accttype, s.include) for s in statements] == [
        ("stmt", "160000100", CHECKING, "CHECKING", "N"),
        ("stmt", "121099999", EURO, "CHECKING", "N"),
        ("ccstmt", None, CARD, None, "N"),
    ]
    assert all(
        (s.userid, s.userpass, s.dtstart, s.dtend) == (USER, PASSWORD, None, None)
        for s in statements
    )


async def test_transactions_carry_the_corpus_values(server: OfxServer) -> None:
    async with httpx.AsyncClient() as http:
        ofx = await logged_in(http, server)
        checking, euro, card = await ofx.fetch_accounts()
        rows = await ofx.fetch_transactions(checking, None, None)
        euro_rows = await ofx.fetch_transactions(euro, None, None)
        card_rows = await ofx.fetch_transactions(card, None, None)

    # The statement answers are read as statement files are (bankhub.statements.ofx): the
    # description joins NAME and MEMO, NAME is the merchant and counterparty, the booking date
    # is the date written in DTPOSTED and its instant is kept, DTUSER is information.
    assert rows == [
        TransactionRecord(
            bank_id="0000123456782009040100001",
            booking_date=date(2009, 4, 1),
            amount=Decimal("-6.60"),
            currency="CAD",
            description="POS MERCHANDISE;MCDONALD'S #112",
            merchant="MCDONALD'S #112",
            meta={"trntype": "POS", "posted_at": "2009-04-01T17:20:17+00:00"},
            counterparty_name="MCDONALD'S #112",
        ),
        TransactionRecord(
            bank_id="0000123456782009040200004",
            booking_date=date(2009, 4, 2),
            amount=Decimal("-316.67"),
            currency="CAD",
            description="MISCELLANEOUS PAYMENTS;Joe's Bald Hairstyles",
            merchant="Joe's Bald Hairstyles",
            meta={"trntype": "CHECK", "checknum": "0", "posted_at": "2009-04-02T17:20:17+00:00"},
            counterparty_name="Joe's Bald Hairstyles",
        ),
        TransactionRecord(
            bank_id="0000123456782009040300005",
            booking_date=date(2009, 4, 3),
            amount=Decimal("-22.00"),
            currency="CAD",
            description="POS MERCHANDISE;CONNIE'S HAIR D",
            merchant="CONNIE'S HAIR D",
            meta={"trntype": "POS", "posted_at": "2009-04-03T17:20:17+00:00"},
            counterparty_name="CONNIE'S HAIR D",
        ),
    ]
    # comma decimal separators in the file still give exact Decimals
    assert euro_rows == [
        TransactionRecord(
            "00002",
            date(2005, 10, 4),
            Decimal("-200.00"),
            "USD",
            "check",
            meta={"trntype": "CHECK", "checknum": "1000"},
        ),
        TransactionRecord(
            "00003",
            date(2005, 10, 20),
            Decimal("-300.00"),
            "USD",
            "atm",
            meta={"trntype": "ATM", "dtuser": "2005-10-20"},
        ),
    ]
    assert card_rows == [
        TransactionRecord(
            "201705080001",
            date(2017, 5, 8),
            Decimal("-5.50"),
            "AUD",
            "SOME MEMO",
            meta={
                "trntype": "DEBIT",
                "dtuser": "2017-05-08",
                "posted_at": "2017-05-08T00:00:00+00:00",
            },
        )
    ]
    assert [s.include for s in server.seen[-3:]] == ["Y", "Y", "Y"]


async def test_the_requested_dates_reach_the_bank_and_bound_the_rows(server: OfxServer) -> None:
    async with httpx.AsyncClient() as http:
        ofx = await logged_in(http, server)
        checking, *_ = await ofx.fetch_accounts()
        rows = await ofx.fetch_transactions(checking, date(2009, 4, 2), date(2009, 4, 2))

    request = server.seen[-1]
    assert (request.acctid, request.dtstart, request.dtend) == (
        CHECKING,
        "20090402000000.000[+0:UTC]",
        "20090403000000.000[+0:UTC]",
    )
    assert [r.bank_id for r in rows] == ["0000123456782009040200004"]


async def test_a_wrong_password_is_invalid_credentials(server: OfxServer) -> None:
    store = MemoryStateStore()
    async with httpx.AsyncClient() as http:
        with pytest.raises(InvalidCredentials, match="rejected the user id or password") as failure:
            await connector(http, server, store).authenticate(
                {"user_id": USER, "password": "wrong"}
            )
    assert "wrong" not in failure.value.message
    assert store.load() == {}
    assert server.seen[0].userpass == "wrong"


@pytest.mark.parametrize(
    ("code", "failure", "message"),
    [
        (15000, PasswordExpired, "wants a new password"),
        (15502, AccountLocked, "locked"),
        (15510, InvalidCredentials, "CLIENTUID"),
        (15511, ProviderUnavailable, "multi-factor"),
        (2000, ProviderUnavailable, r"refused the sign-on \(OFX status 2000\): Try later"),
    ],
)
async def test_sign_on_status_codes_map_to_failures(
    server: OfxServer, code: int, failure: type[ConnectorFailure], message: str
) -> None:
    server.users[USER].signon_code = code
    server.users[USER].signon_message = "Try later"
    async with httpx.AsyncClient() as http:
        with pytest.raises(failure, match=message):
            await logged_in(http, server)


async def test_a_statement_error_status_carries_the_bank_message(server: OfxServer) -> None:
    server.users[USER].accounts.append(
        Served("error_message.ofx", "SVB-1", "BANK", "121140399", "CHECKING")
    )
    async with httpx.AsyncClient() as http:
        ofx = await logged_in(http, server)
        with pytest.raises(ProviderUnavailable) as failure:
            await ofx.fetch_accounts()
    assert failure.value.message == (
        "The bank refused the statement request (OFX status 2000): General Server Error"
    )


async def test_investment_accounts_are_skipped_with_a_notice(server: OfxServer) -> None:
    server.users[USER].accounts.append(Served("-", "INV-9", "INV", "broker.example", desc="401k"))
    async with httpx.AsyncClient() as http:
        ofx = await logged_in(http, server)
        accounts = await ofx.fetch_accounts()
    assert isinstance(ofx, NoticesCapability)
    assert [a.bank_id for a in accounts] == [CHECKING, EURO, CARD]
    assert ofx.notices() == [
        "The investment account '401k' is not read through OFX Direct Connect; it was skipped."
    ]


async def test_open_session_needs_the_password_again(server: OfxServer) -> None:
    store = MemoryStateStore()
    async with httpx.AsyncClient() as http:
        ofx = connector(http, server, store)
        await ofx.authenticate({"user_id": USER, "password": PASSWORD})
        again = connector(http, server, MemoryStateStore(store.load()))
        with pytest.raises(SessionExpired, match="does not keep it"):
            await again.open_session()
        with pytest.raises(SessionExpired):
            await again.fetch_accounts()
    saved = str(store.load())
    assert PASSWORD not in saved
    assert USER not in saved
    assert [a["acctid"] for a in store.load()["accounts"]] == [CHECKING, EURO, CARD]


async def test_ofx_1_servers_get_sgml_requests(server: OfxServer) -> None:
    async with httpx.AsyncClient() as http:
        ofx = connector(http, server, version=102)
        await ofx.authenticate({"user_id": USER, "password": PASSWORD})
        accounts = await ofx.fetch_accounts()
    assert {s.header for s in server.seen} == {"OFXHEADER:100 VERSION 102"}
    assert [a.balance for a in accounts] == [
        Decimal("382.34"),
        Decimal("200.29"),
        Decimal("-123.45"),
    ]


async def test_a_slow_bank_is_unavailable(server: OfxServer) -> None:
    server.users[USER].delay = 1.0
    async with httpx.AsyncClient(timeout=0.3) as http:
        with pytest.raises(ProviderUnavailable, match="did not answer in time"):
            await logged_in(http, server)


async def test_a_plain_http_server_url_is_refused_unless_allowed(server: OfxServer) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ProviderUnavailable, match="must use HTTPS"):
            await connector(http, server, insecure=False).authenticate(
                {"user_id": USER, "password": PASSWORD}
            )
    assert server.seen == []


async def test_ofx_keeps_the_contract_within_one_run(server: OfxServer) -> None:
    """Unattended reopening is left out: Direct Connect needs the password for every request
    and bankhub does not store it, so open_session raises SessionExpired by design (see
    test_open_session_needs_the_password_again); the vault re-authenticates instead."""
    async with httpx.AsyncClient() as http:
        report = await check_contract(
            ContractCase(
                name="ofx",
                build=lambda store: connector(http, server, store),
                credentials={"user_id": USER, "password": PASSWORD},
                secrets=(PASSWORD, USER),
                unattended=False,
            )
        )
    assert [a.bank_id for a in report.accounts] == [CHECKING, EURO, CARD]
    assert {k: len(v) for k, v in report.transactions.items()} == {CHECKING: 3, EURO: 2, CARD: 1}
    assert report.identity == f"user:{USER}"


def test_ofx_is_registered() -> None:
    assert default_registry().info("ofx") is OfxDirectConnector.info


async def test_the_password_never_reaches_the_logs(
    server: OfxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as http:
        ofx = await logged_in(http, server)
        accounts = await ofx.fetch_accounts()
        await ofx.fetch_transactions(accounts[0], date(2009, 4, 1), None)
    assert "127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("name", ["bank_medium.ofx", "ofx-v102-empty-tags.ofx", "suncorp.ofx"])
async def test_a_statement_answer_reads_as_the_same_statement_file(
    server: OfxServer, name: str
) -> None:
    # One OFX reader: what the bank answers is read exactly as the file would be imported,
    # including the SGML quirks ofxtools' models refuse (empty elements, blank lines first).
    served = Served.from_corpus(name)
    server.users[USER] = User(PASSWORD, [replace(served, accttype=served.accttype or "CHECKING")])
    async with httpx.AsyncClient() as http:
        ofx = await logged_in(http, server)
        (account,) = await ofx.fetch_accounts()
        rows = await ofx.fetch_transactions(account, None, None)
    (imported,) = parse_statement(corpus(name), name).accounts
    assert rows == list(imported.transactions)
    assert (account.currency, account.balance, account.available_balance) == (
        imported.currency,
        imported.closing_balance,
        imported.available_balance,
    )
