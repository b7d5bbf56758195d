"""The XS2A connector against a stateful NextGenPSD2 peer bank on 127.0.0.1."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest

from bankhub.connectors.base import (
    AccountType,
    Answer,
    ConsentExpired,
    InteractionRejected,
    InvalidCredentials,
    MemoryStateStore,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    NeedsRedirect,
    ProviderUnavailable,
    RateLimited,
    TransactionStatus,
)
from bankhub.connectors.registry import default_registry
from bankhub.connectors.testing import ContractCase, check_contract
from bankhub.connectors.xs2a import Xs2aConnector
from tests.conftest import FakeClock
from tests.connectors.xs2a.conftest import (
    PASSWORD,
    PSU_ID,
    PSU_IP,
    PSU_LANGUAGE,
    RETURN_URL,
    Build,
    login,
    responder,
)
from tests.connectors.xs2a.peer import PeerBank

CREDENTIALS = {"psu_id": PSU_ID, "password": PASSWORD}


@pytest.mark.parametrize(
    ("approach", "steps"), [("REDIRECT", 1), ("DECOUPLED", 2), ("EMBEDDED", 2)]
)
async def test_each_sca_approach_keeps_the_contract(
    approach: str, steps: int, bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    credentials = {"psu_id": PSU_ID} if approach == "DECOUPLED" else CREDENTIALS
    report = await check_contract(
        ContractCase(
            name=approach,
            build=lambda store: build(approach, store),
            credentials=credentials if approach != "REDIRECT" else {},
            respond=responder(bank, http),
            secrets=(PASSWORD, bank.code),
        )
    )
    assert report.steps == steps
    # the PSU-ID names the user; a redirect bank that asked for none leaves it to the accounts
    assert report.identity == (None if approach == "REDIRECT" else f"psu:{PSU_ID}")
    assert {a.bank_id for a in report.accounts} == {"acc-giro", "acc-save", "acc-usd"}
    # every row of the bank's history (730 days back by default) arrived, across pages
    assert len(report.transactions["acc-giro"]) == len(bank.ledger("acc-giro"))
    (consent,) = bank.consents.values()
    assert consent.status == "valid"
    assert consent.approach == approach


async def test_embedded_with_one_method_asks_only_for_the_code(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    bank.methods = ("sms",)
    connector = build("EMBEDDED")
    with pytest.raises(NeedsCode, match="SMS_OTP"):
        await connector.authenticate(CREDENTIALS)
    await connector.resume(Answer("code", bank.code))
    assert connector.consent().expires_at is not None


async def test_embedded_offers_the_banks_methods_and_refuses_a_wrong_code(
    bank: PeerBank, build: Build
) -> None:
    store = MemoryStateStore()
    connector = build("EMBEDDED", store)
    with pytest.raises(NeedsChoice) as choice:
        await connector.authenticate(CREDENTIALS)
    assert [o.id for o in choice.value.options] == ["sms", "push"]
    with pytest.raises(InteractionRejected, match="Choose one"):
        await connector.resume(Answer("choice", "carrier-pigeon"))
    with pytest.raises(NeedsCode):
        await connector.resume(Answer("choice", "push"))
    with pytest.raises(InteractionRejected, match="refused"):
        await connector.resume(Answer("code", "999999"))
    (consent,) = bank.consents.values()
    assert consent.status == "rejected"
    assert "valid_until" not in store.load()
    with pytest.raises(ConsentExpired, match="CONSENT_INVALID"):
        await connector.fetch_accounts()


async def test_embedded_wrong_password_or_user_is_invalid_credentials(
    bank: PeerBank, build: Build
) -> None:
    with pytest.raises(InvalidCredentials, match="PSU_CREDENTIALS_INVALID"):
        await build("EMBEDDED").authenticate({"psu_id": PSU_ID, "password": "wrong"})
    with pytest.raises(InvalidCredentials, match="PSU_CREDENTIALS_INVALID"):
        await build("EMBEDDED").authenticate({"psu_id": "mallory", "password": PASSWORD})
    with pytest.raises(InvalidCredentials, match="password"):
        await build("EMBEDDED").authenticate({"psu_id": PSU_ID})
    with pytest.raises(InvalidCredentials, match="user ID"):
        await build("DECOUPLED").authenticate({})


async def test_redirect_sends_the_user_to_the_bank_and_back(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector = build("REDIRECT")
    with pytest.raises(NeedsRedirect) as redirect:
        await connector.authenticate({})
    assert redirect.value.url.startswith(f"{bank.origin}/bank/sca/")
    creation = next(h for m, t, h in bank.requests if m == "POST" and t.endswith("/v1/consents"))
    assert creation["tpp-redirect-uri"] == RETURN_URL
    assert creation["tpp-nok-redirect-uri"] == f"{RETURN_URL}?sca=nok"
    assert creation["tpp-redirect-preferred"] == "true"
    with pytest.raises(InteractionRejected, match="not confirmed"):
        await connector.resume(Answer("redirect"))  # came back without approving
    answer = await responder(bank, http)(redirect.value)
    await connector.resume(answer)
    assert len(await connector.fetch_accounts()) == 3


async def test_redirect_denied_at_the_bank_is_rejected(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector = build("REDIRECT")
    with pytest.raises(NeedsRedirect) as redirect:
        await connector.authenticate({})
    answer = await responder(bank, http, approve=False)(redirect.value)
    assert answer.params == {"sca": "nok"}
    with pytest.raises(InteractionRejected, match="not approved"):
        await connector.resume(answer)


@pytest.mark.parametrize("bank", [{"decoupled_polls": 4}], indirect=True)
async def test_decoupled_polls_until_the_app_approves(bank: PeerBank, build: Build) -> None:
    connector = build("DECOUPLED")
    with pytest.raises(NeedsDecoupledApproval, match="BankApp"):
        await connector.authenticate({"psu_id": PSU_ID})
    for _ in range(3):
        with pytest.raises(NeedsDecoupledApproval, match="Still waiting"):
            await connector.resume(Answer.poll())
    await connector.resume(Answer.poll())
    (consent,) = bank.consents.values()
    assert (consent.status, consent.polls) == ("valid", 4)


@pytest.mark.parametrize("bank", [{"decoupled_outcome": "deny"}], indirect=True)
async def test_decoupled_denied_in_the_app_is_rejected(bank: PeerBank, build: Build) -> None:
    connector = build("DECOUPLED")
    with pytest.raises(NeedsDecoupledApproval):
        await connector.authenticate({"psu_id": PSU_ID})
    with pytest.raises(NeedsDecoupledApproval):
        await connector.resume(Answer.poll())
    with pytest.raises(InteractionRejected):
        await connector.resume(Answer.poll())


async def _connected(
    build: Build, bank: PeerBank, http: httpx.AsyncClient, **params: object
) -> tuple[Xs2aConnector, MemoryStateStore]:
    store = MemoryStateStore()
    connector = build("EMBEDDED", store, **params)
    await login(connector, responder(bank, http), CREDENTIALS)
    return connector, store


async def test_records_carry_decimals_ids_and_owners(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector, _ = await _connected(build, bank, http)
    giro, save, usd = await connector.fetch_accounts()
    assert (giro.balance, giro.available_balance) == (Decimal("1523.42"), Decimal("3523.42"))
    assert (giro.iban, giro.number, giro.holder_name) == (
        "DE89370400440532013000",
        "DE89370400440532013000",
        "Erika Mustermann",
    )
    assert (save.type, save.name, save.number, save.iban) == (
        AccountType.SAVINGS,
        "Tagesgeld",
        "0532013001",
        None,
    )
    assert save.holder_name == "Erika Mustermann, Max Mustermann"
    assert (save.balance, save.available_balance) == (Decimal("10000.5"), None)
    assert (usd.currency, usd.balance) == ("USD", Decimal("-42.10"))
    rows = await connector.fetch_transactions(giro, None, None)
    by_id = {r.bank_id: r for r in rows}
    ledger = {r.id or r.entry: r for r in bank.ledger("acc-giro")}
    assert set(by_id) == set(ledger)
    for bank_id, row in by_id.items():
        assert row.amount == Decimal(ledger[bank_id].amount)
        assert isinstance(row.amount, Decimal)
    assert by_id["acc-giro-p1"].status is TransactionStatus.PENDING
    assert by_id["acc-giro-pe2"].status is TransactionStatus.PENDING
    assert by_id["acc-giro-pe2"].description == "Refund"  # no remittance: the counterparty
    assert by_id["acc-giro-t0001"].status is TransactionStatus.BOOKED
    assert by_id["acc-giro-e0000"].bank_id == "acc-giro-e0000"  # entryReference when no id
    assert by_id["acc-giro-t0001"].value_date == by_id["acc-giro-t0001"].booking_date + timedelta(1)


async def test_with_balance_reads_balances_from_the_account_list(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector, _ = await _connected(build, bank, http, with_balance=True)
    before = len(bank.requests)
    accounts = await connector.fetch_accounts()
    calls = [t for _, t, _ in bank.requests[before:]]
    assert calls == ["/psd2/v1/accounts?withBalance=true"]
    assert accounts[0].balance == Decimal("1523.42")


async def test_date_filters_hold_at_the_bank_and_in_the_answer(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector, _ = await _connected(build, bank, http)
    giro = (await connector.fetch_accounts())[0]
    since, until = date(2026, 8, 1), date(2026, 9, 30)
    before = len(bank.requests)
    rows = await connector.fetch_transactions(giro, since, until)
    expected = {r.id or r.entry for r in bank.ledger("acc-giro") if since <= r.day <= until}
    assert {r.bank_id for r in rows} == expected
    assert expected
    assert all(since <= r.booking_date <= until for r in rows)
    first = httpx.URL(bank.requests[before][1])
    assert first.params["dateFrom"] == "2026-08-01"
    assert first.params["dateTo"] == "2026-09-30"
    assert first.params["bookingStatus"] == "both"


@pytest.mark.parametrize(
    "bank",
    [{"page_size": 7, "rows_per_account": 100}, {"page_size": 10, "absolute_next": True}],
    indirect=True,
)
async def test_paging_follows_next_links_until_the_last_page(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector, _ = await _connected(build, bank, http)
    giro = (await connector.fetch_accounts())[0]
    before = len(bank.requests)
    rows = await connector.fetch_transactions(giro, None, None)
    ledger = bank.ledger("acc-giro")
    assert len(rows) == len(ledger)
    assert {r.bank_id for r in rows} == {r.id or r.entry for r in ledger}
    pages = [t for _, t, _ in bank.requests[before:]]
    assert len(pages) == -(-len(ledger) // bank.page_size)
    assert all("pageIndex" in t for t in pages[1:])


@pytest.mark.parametrize("bank", [{"max_valid_days": 30}], indirect=True)
async def test_the_bank_shortens_and_then_expires_the_consent(
    bank: PeerBank, build: Build, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    connector, store = await _connected(build, bank, http)
    assert store.load()["valid_until"] == "2026-12-20"  # the bank cut 90 days to 30
    assert connector.consent().expires_at == datetime(2026, 12, 21, tzinfo=UTC)
    again = build("EMBEDDED", MemoryStateStore(store.load()))
    await again.open_session()
    bank.advance(31)  # the bank's day moves on; bankhub's clock has not noticed yet
    with pytest.raises(ConsentExpired, match="CONSENT_EXPIRED"):
        await again.fetch_accounts()
    with pytest.raises(ConsentExpired, match="expired"):
        await build("EMBEDDED", MemoryStateStore(store.load())).open_session()
    clock.advance(days=31)  # past validUntil: no need to ask the bank
    before = len(bank.requests)
    with pytest.raises(ConsentExpired, match="2026-12-20"):
        await build("EMBEDDED", MemoryStateStore(store.load())).open_session()
    assert len(bank.requests) == before


async def test_unattended_reads_beyond_frequency_per_day_are_rate_limited(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    _, store = await _connected(build, bank, http, frequency_per_day=2, with_balance=True)
    unattended = build("EMBEDDED", MemoryStateStore(store.load()))
    await unattended.open_session()
    before = len(bank.requests)
    await unattended.fetch_accounts()
    await unattended.fetch_accounts()
    with pytest.raises(RateLimited, match="ACCESS_EXCEEDED") as limited:
        await unattended.fetch_accounts()
    assert limited.value.retry_after == 3600.0
    for _, _, headers in bank.requests[before:]:
        assert "psu-ip-address" not in headers  # unattended: no PSU-IP-Address
        assert "psu-accept-language" not in headers  # nor the user's language
    bank.advance(1)
    assert len(await unattended.fetch_accounts()) == 3


async def test_429_with_an_http_date_and_5xx_and_refused_connections(
    bank: PeerBank, build: Build, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    connector, _ = await _connected(build, bank, http)
    when = format_datetime(clock.now + timedelta(seconds=90), usegmt=True)
    bank.fail("/v1/accounts", 429, retry_after=when)
    with pytest.raises(RateLimited) as limited:
        await connector.fetch_accounts()
    assert limited.value.retry_after == 90.0
    bank.fail("/v1/accounts", 503, code="SERVICE_UNAVAILABLE", retry_after="30")
    with pytest.raises(ProviderUnavailable, match="503") as down:
        await connector.fetch_accounts()
    assert down.value.retry_after == 30.0
    bank.fail("/transactions", 500)
    with pytest.raises(ProviderUnavailable, match="500"):
        await connector.fetch_transactions((await connector.fetch_accounts())[0], None, None)
    with socket_closed() as port:
        gone = build("REDIRECT", base_url=f"http://127.0.0.1:{port}/psd2")
        with pytest.raises(ProviderUnavailable, match="cannot be reached"):
            await gone.authenticate({})


async def test_a_bank_that_does_not_answer_in_time_is_unavailable(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector, _ = await _connected(build, bank, http, timeout_seconds=0.3)
    bank.fail("/v1/accounts", stall=1.5)
    with pytest.raises(ProviderUnavailable, match=r"did not answer within 0.3s"):
        await connector.fetch_accounts()


async def test_revoke_deletes_the_consent_at_the_bank(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector, store = await _connected(build, bank, http)
    saved = store.load()
    await connector.revoke()
    (consent,) = bank.consents.values()
    assert consent.status == "terminatedByTpp"
    assert any(m == "DELETE" for m, _, _ in bank.requests)
    assert store.load() == {}
    with pytest.raises(ConsentExpired):
        await connector.open_session()
    stale = build("EMBEDDED", MemoryStateStore(saved))
    with pytest.raises(ConsentExpired, match="terminatedByTpp"):
        await stale.open_session()
    with pytest.raises(ConsentExpired, match="CONSENT_INVALID"):
        await stale.fetch_accounts()
    await stale.revoke()  # already gone at the bank: still done


async def test_every_request_carries_the_protocol_headers(
    bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    _, store = await _connected(build, bank, http)
    ids = [h["x-request-id"] for _, _, h in bank.requests]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)
    for method, target, headers in bank.requests:
        assert headers["psu-ip-address"] == PSU_IP  # the user was present for all of these
        assert headers["psu-accept-language"] == PSU_LANGUAGE
        if "/v1/accounts" in target:
            assert headers["consent-id"] == store.load()["consent_id"]
        if method in ("POST", "PUT"):
            assert headers["content-type"] == "application/json"
    assert PASSWORD not in str(store.load())
    assert bank.code not in str(store.load())


async def test_a_missing_psu_ip_address_is_named(build: Build, http: httpx.AsyncClient) -> None:
    connector = build("REDIRECT")
    connector.context.options = {}
    with pytest.raises(ProviderUnavailable, match="psu_ip_address"):
        await connector.authenticate({})


def test_the_registry_knows_xs2a() -> None:
    registry = default_registry()
    assert "xs2a" in registry.ids()
    assert registry.info("xs2a").auth_flows == ("redirect", "decoupled", "embedded")


class socket_closed:
    """A 127.0.0.1 port with nothing listening."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None
