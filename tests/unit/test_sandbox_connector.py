"""The sandbox connector: every scenario of PRODUCT.md §3, through the connector interface."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bankhub.connectors.base import (
    AccountLocked,
    AccountsCapability,
    AccountType,
    Answer,
    ConnectorContext,
    ConnectorFailure,
    ConsentCapability,
    ConsentExpired,
    Interaction,
    InteractionRejected,
    InvalidCredentials,
    MemoryStateStore,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    NeedsRedirect,
    PasswordExpired,
    ProviderUnavailable,
    RateLimited,
    RevokeCapability,
    TransactionRecord,
    TransactionsCapability,
    TransactionStatus,
)
from bankhub.connectors.registry import default_registry
from bankhub.connectors.sandbox import SandboxConnector, bank
from bankhub.connectors.sandbox.connector import SCENARIOS

GOOD = {"password": "pass_good"}
DE_BANK: dict[str, Any] = {
    "seed": 4242,
    "currency": "EUR",
    "country_code": "DE",
    "slug": "sandbox-test-de",
    "name": "Sandbox Test DE",
}
RETURN_URL = "https://hub.example/v2/connect/return?term=abc"
PUBLIC_URL = "https://hub.example"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


Build = Callable[..., SandboxConnector]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 14, 9, 30, tzinfo=UTC))


@pytest.fixture
def make(http: httpx.AsyncClient, clock: FakeClock) -> Build:
    def build(
        state: MemoryStateStore | None = None,
        institution: dict[str, Any] | None = None,
        **options: Any,
    ) -> SandboxConnector:
        context = ConnectorContext(
            institution=institution or DE_BANK,
            http=http,
            state=state if state is not None else MemoryStateStore(),
            clock=clock,
            return_url=RETURN_URL,
            public_url=PUBLIC_URL,
            options=options,
        )
        return SandboxConnector(context)

    return build


def creds(username: str, password: str = "pass_good") -> dict[str, str]:
    return {"username": username, "password": password}


def dump(connector: SandboxConnector) -> str:
    return json.dumps(connector.context.state.load())


async def everything(connector: SandboxConnector) -> list[TransactionRecord]:
    rows: list[TransactionRecord] = []
    for account in await connector.fetch_accounts():
        rows.extend(await connector.fetch_transactions(account, None, None))
    return rows


def assert_clean(connector: SandboxConnector) -> None:
    text = dump(connector)
    assert "pass_good" not in text
    assert "123456" not in text


# --- declaration ----------------------------------------------------------------------------


def test_declares_itself_and_its_capabilities(make: Build) -> None:
    info = SandboxConnector.info
    assert info.id == "sandbox"
    assert [f.name for f in info.credential_fields] == ["username", "password"]
    assert [f.kind.value for f in info.credential_fields] == ["text", "secret"]
    assert {"credentials", "redirect", "decoupled"} <= {flow.value for flow in info.auth_flows}
    assert info.unattended_refreshes_per_day == 4
    connector = make()
    for capability in (
        AccountsCapability,
        TransactionsCapability,
        ConsentCapability,
        RevokeCapability,
    ):
        assert isinstance(connector, capability)
    assert "sandbox" in default_registry().ids()


# --- user_good --------------------------------------------------------------------------------


async def test_user_good_has_three_accounts_and_two_years(make: Build, clock: FakeClock) -> None:
    connector = make()
    await connector.authenticate(creds("user_good"))
    accounts = await connector.fetch_accounts()
    assert [a.type for a in accounts] == [
        AccountType.CURRENT,
        AccountType.SAVINGS,
        AccountType.CREDIT_CARD,
    ]
    today = clock().date()
    for account in accounts:
        assert account.currency == "EUR"
        assert account.holder_name
        assert isinstance(account.balance, Decimal)
        assert isinstance(account.available_balance, Decimal)
        assert (account.bank_id or "").startswith("sandbox-test-de-")
    assert (accounts[0].iban or "").startswith("DE")
    rows = await connector.fetch_transactions(accounts[0], None, None)
    assert len(rows) > 500
    oldest = min(t.booking_date for t in rows)
    assert today - timedelta(days=730) < oldest <= today - timedelta(days=700)
    assert today - timedelta(days=3) <= max(t.booking_date for t in rows) <= today
    assert any(t.status is TransactionStatus.PENDING for t in await everything(connector))
    assert len({t.bank_id for t in rows}) == len(rows)
    assert any(t.merchant for t in rows)
    assert any(t.amount > 0 and t.category == "income" for t in rows)
    assert_clean(connector)


async def test_fetch_transactions_filters_booking_date_inclusively(make: Build) -> None:
    connector = make()
    await connector.authenticate(creds("user_good"))
    current = (await connector.fetch_accounts())[0]
    every = await connector.fetch_transactions(current, None, None)
    since, until = date(2024, 6, 1), date(2024, 6, 30)
    june = await connector.fetch_transactions(current, since, until)
    assert june == [t for t in every if since <= t.booking_date <= until]
    assert {t.booking_date for t in june} >= {since, until} & {t.booking_date for t in every}
    assert all(since <= t.booking_date <= until for t in june)


async def test_unattended_refresh_reopens_from_state_alone(make: Build) -> None:
    state = MemoryStateStore()
    await make(state).authenticate(creds("user_good"))
    later = make(state)
    await later.open_session()
    assert len(await later.fetch_accounts()) == 3
    assert_clean(later)


async def test_open_session_without_a_session_needs_credentials(make: Build) -> None:
    with pytest.raises(InvalidCredentials):
        await make().open_session()


async def test_revoke_ends_the_session(make: Build) -> None:
    state = MemoryStateStore()
    connector = make(state)
    await connector.authenticate(creds("user_good"))
    await connector.revoke()
    assert connector.consent().expires_at is None
    with pytest.raises(InvalidCredentials):
        await make(state).open_session()


async def test_old_days_do_not_change_when_time_passes(make: Build, clock: FakeClock) -> None:
    state = MemoryStateStore()
    connector = make(state)
    await connector.authenticate(creds("user_good"))
    current = (await connector.fetch_accounts())[0]
    window = (date(2024, 9, 1), date(2024, 9, 30))
    before = await connector.fetch_transactions(current, *window)
    clock.advance(days=3)
    after = await make(state).fetch_transactions(current, *window)
    assert before == after


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "username", sorted(SCENARIOS - {"user_down", "user_ratelimited", "user_slow"})
)
async def test_wrong_password_is_wrong_credentials(make: Build, username: str) -> None:
    with pytest.raises(InvalidCredentials):
        await make().authenticate(creds(username, "pass_bad"))


async def test_unknown_user_is_wrong_credentials(make: Build) -> None:
    with pytest.raises(InvalidCredentials):
        await make().authenticate(creds("user_nobody"))


async def test_locked_and_expired(make: Build) -> None:
    with pytest.raises(AccountLocked) as locked:
        await make().authenticate(creds("user_locked"))
    assert locked.value.status == "account_locked"
    with pytest.raises(PasswordExpired) as expired:
        await make().authenticate(creds("user_expired"))
    assert expired.value.status == "password_expired"


async def test_user_down_fails_every_call(make: Build) -> None:
    with pytest.raises(ProviderUnavailable):
        await make().authenticate(creds("user_down"))
    state = MemoryStateStore({"username": "user_down", "session": "s"})
    connector = make(state)
    with pytest.raises(ProviderUnavailable):
        await connector.open_session()
    with pytest.raises(ProviderUnavailable):
        await connector.fetch_accounts()


async def test_user_ratelimited_says_when_to_retry(make: Build) -> None:
    with pytest.raises(RateLimited) as refused:
        await make().authenticate(creds("user_ratelimited"))
    assert refused.value.retry_after == 60


async def test_user_slow_is_cut_by_the_platform_timeout(make: Build) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(make(slow_seconds=60.0).authenticate(creds("user_slow")), 0.05)


async def test_user_slow_answers_every_call_after_the_delay(make: Build) -> None:
    state = MemoryStateStore()
    connector = make(state, slow_seconds=0.001)
    await connector.authenticate(creds("user_slow"))
    await connector.open_session()
    accounts = await connector.fetch_accounts()
    assert await connector.fetch_transactions(accounts[1], None, None)
    slow = make(state, slow_seconds=60.0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow.fetch_accounts(), 0.05)


async def test_outage_switch_takes_one_institution_down(make: Build) -> None:
    other = {**DE_BANK, "slug": "sandbox-other"}
    state = MemoryStateStore()
    await make(state).authenticate(creds("user_good"))
    bank.set_outage(DE_BANK["slug"], True)
    try:
        assert bank.is_down(DE_BANK["slug"])
        with pytest.raises(ProviderUnavailable):
            await make().authenticate(creds("user_good"))
        with pytest.raises(ProviderUnavailable):
            await make(state).open_session()
        with pytest.raises(ProviderUnavailable):
            await make(state).fetch_accounts()
        await make(institution=other).authenticate(creds("user_good"))
    finally:
        bank.set_outage(DE_BANK["slug"], False)
    assert not bank.is_down(DE_BANK["slug"])
    await make(state).open_session()


# --- interactive steps --------------------------------------------------------------------------


async def test_user_otp_allows_a_retry_after_a_wrong_code(make: Build) -> None:
    state = MemoryStateStore()
    with pytest.raises(NeedsCode) as asked:
        await make(state).authenticate(creds("user_otp"))
    assert asked.value.secret
    with pytest.raises(InteractionRejected):
        await make(state).resume(Answer("code", "000000"))
    connector = make(state)
    await connector.resume(Answer("code", "123456"))
    assert len(await connector.fetch_accounts()) == 3
    assert_clean(connector)


async def test_user_question_then_device_choice(make: Build) -> None:
    state = MemoryStateStore()
    connector = make(state)
    with pytest.raises(NeedsCode) as asked:
        await connector.authenticate(creds("user_question"))
    assert not asked.value.secret
    assert asked.value.field_label == "Answer"
    with pytest.raises(InteractionRejected):
        await connector.resume(Answer("code", "red"))
    with pytest.raises(NeedsChoice) as choice:
        await connector.resume(Answer("code", "  BLUE "))
    ids = [option.id for option in choice.value.options]
    assert len(ids) >= 2
    with pytest.raises(InteractionRejected):
        await connector.resume(Answer("choice", "fax"))
    await connector.resume(Answer("choice", ids[0]))
    assert await connector.fetch_accounts()
    assert "blue" not in dump(connector)
    assert_clean(connector)


async def test_user_decoupled_waits_for_approval(make: Build, clock: FakeClock) -> None:
    connector = make()
    with pytest.raises(NeedsDecoupledApproval):
        await connector.authenticate(creds("user_decoupled"))
    for _ in range(2):
        clock.advance(seconds=1)
        with pytest.raises(NeedsDecoupledApproval):
            await connector.resume(Answer.poll())
    clock.advance(seconds=1)
    await connector.resume(Answer.poll())
    assert await connector.fetch_accounts()


async def test_user_decoupled_delay_is_an_option(make: Build, clock: FakeClock) -> None:
    connector = make(decoupled_delay_seconds=30.0)
    with pytest.raises(NeedsDecoupledApproval):
        await connector.authenticate(creds("user_decoupled"))
    clock.advance(seconds=29)
    with pytest.raises(NeedsDecoupledApproval):
        await connector.resume(Answer.poll())
    clock.advance(seconds=1)
    await connector.resume(Answer.poll())


async def redirect_request(connector: SandboxConnector) -> tuple[str, dict[str, list[str]]]:
    with pytest.raises(NeedsRedirect) as sent:
        await connector.authenticate(creds("user_redirect"))
    url = sent.value.url
    assert url.startswith(f"{PUBLIC_URL}/sandbox-bank/authorize?")
    query = parse_qs(urlsplit(url).query)
    assert query["return_url"] == [RETURN_URL]
    return query["request"][0], query


async def test_user_redirect_with_a_valid_code(make: Build) -> None:
    connector = make()
    request_id, _ = await redirect_request(connector)
    code = bank.consent_code(request_id)
    await connector.resume(Answer("redirect", params={"request": request_id, "code": code}))
    assert await connector.fetch_accounts()


async def test_the_bank_page_is_told_the_connect_pages_language(make: Build) -> None:
    # OpenID Connect's ui_locales, only when the connect page said its language
    _, hinted = await redirect_request(make(user_language="vi"))
    assert hinted["ui_locales"] == ["vi"]
    _, plain = await redirect_request(make())
    assert "ui_locales" not in plain


async def test_user_redirect_rejects_forged_codes_and_keeps_waiting(make: Build) -> None:
    connector = make()
    request_id, _ = await redirect_request(connector)
    with pytest.raises(InteractionRejected):
        await connector.resume(Answer("redirect", params={"request": request_id, "code": "f" * 64}))
    other = "someone-elses-request"
    with pytest.raises(InteractionRejected):
        await connector.resume(
            Answer("redirect", params={"request": other, "code": bank.consent_code(other)})
        )
    code = bank.consent_code(request_id)
    await connector.resume(Answer("redirect", params={"request": request_id, "code": code}))


async def test_user_redirect_denied_at_the_bank(make: Build) -> None:
    connector = make()
    request_id, _ = await redirect_request(connector)
    with pytest.raises(InteractionRejected, match="declined"):
        await connector.resume(
            Answer("redirect", params={"request": request_id, "error": "access_denied"})
        )
    with pytest.raises(InvalidCredentials):
        await connector.fetch_accounts()


# --- consent -------------------------------------------------------------------------------------


async def test_consent_lasts_90_days(make: Build, clock: FakeClock) -> None:
    connector = make()
    await connector.authenticate(creds("user_good"))
    assert connector.consent().expires_at == clock() + timedelta(days=90)
    expires_at = connector.consent().expires_at
    assert expires_at is not None
    assert expires_at.tzinfo is not None


async def test_user_consent_short_expires_after_five_minutes(make: Build, clock: FakeClock) -> None:
    state = MemoryStateStore()
    connector = make(state)
    await connector.authenticate(creds("user_consent_short"))
    assert connector.consent().expires_at == clock() + timedelta(minutes=5)
    clock.advance(minutes=4)
    await make(state).open_session()
    clock.advance(minutes=1)
    with pytest.raises(ConsentExpired):
        await make(state).open_session()
    with pytest.raises(ConsentExpired):
        await make(state).fetch_accounts()
    renewed = make(state)
    await renewed.authenticate(creds("user_consent_short"))
    await renewed.open_session()


# --- banks that change things ------------------------------------------------------------------


def content(rows: list[TransactionRecord]) -> list[tuple[Any, ...]]:
    return sorted((t.booking_date, t.amount, t.description, t.status) for t in rows)


async def test_user_remint_changes_ids_not_content(make: Build) -> None:
    state = MemoryStateStore()
    first = make(state)
    await first.authenticate(creds("user_remint"))
    accounts_before = await first.fetch_accounts()
    rows_before = await everything(first)
    await first.open_session()
    assert [a.bank_id for a in await first.fetch_accounts()] == [a.bank_id for a in accounts_before]

    again = make(state)
    await again.authenticate(creds("user_remint"))
    accounts_after = await again.fetch_accounts()
    rows_after = await everything(again)
    assert {a.bank_id for a in accounts_before}.isdisjoint(a.bank_id for a in accounts_after)
    assert [(a.name, a.number, a.iban, a.currency) for a in accounts_before] == [
        (a.name, a.number, a.iban, a.currency) for a in accounts_after
    ]
    assert {t.bank_id for t in rows_before}.isdisjoint(t.bank_id for t in rows_after)
    assert content(rows_before) == content(rows_after)
    # an account record from before the re-mint still finds its transactions
    assert await again.fetch_transactions(accounts_before[0], None, None)
    assert_clean(again)


async def test_user_dynamic_adds_transactions_and_books_pending(make: Build) -> None:
    state = MemoryStateStore()
    await make(state).authenticate(creds("user_dynamic"))
    seen = {t.bank_id: t for t in await everything(make(state))}
    changed_amounts = 0
    for _ in range(6):
        refresh = make(state)
        await refresh.open_session()
        rows = {t.bank_id: t for t in await everything(refresh)}
        added = rows.keys() - seen.keys()
        gone = seen.keys() - rows.keys()
        assert len(added) >= 3
        assert all(seen[bank_id].status is TransactionStatus.PENDING for bank_id in gone)
        for bank_id in gone:
            was = seen[bank_id]
            booked = [
                t
                for t in rows.values()
                if t.bank_id in added
                and t.status is TransactionStatus.BOOKED
                and t.description == was.description
            ]
            assert len(booked) == 1
            changed_amounts += booked[0].amount != was.amount
        seen = rows
    assert changed_amounts >= 1
    assert len(state.load()["refresh_dates"]) == 6


async def test_user_big_has_100000_transactions_over_five_years(make: Build) -> None:
    """What user_big is for (load and paging): 100,000 distinct transactions over five years.
    How fast that is made is the benchmarks' business (bench/), not a timed assertion here."""
    from bankhub.connectors.sandbox.history import ledger

    ledger.cache_clear()
    connector = make()
    await connector.authenticate(creds("user_big"))
    rows = await everything(connector)
    assert len(rows) == 100_000
    assert len({t.bank_id for t in rows}) == 100_000
    oldest = min(t.booking_date for t in rows)
    assert oldest == connector.context.clock().date() - timedelta(days=5 * 365)


# --- data ---------------------------------------------------------------------------------------


async def test_same_seed_same_data_other_seed_other_data(make: Build) -> None:
    one, two = make(), make()
    await one.authenticate(creds("user_good"))
    await two.authenticate(creds("user_good"))
    assert await one.fetch_accounts() == await two.fetch_accounts()
    assert await everything(one) == await everything(two)
    other = make(institution={**DE_BANK, "seed": 7})
    await other.authenticate(creds("user_good"))
    assert content(await everything(other)) != content(await everything(one))


@pytest.mark.parametrize(
    ("country", "currency"),
    [("VN", "VND"), ("DE", "EUR"), ("FR", "EUR"), ("US", "USD"), ("GB", "GBP"), ("MY", "MYR")],
)
async def test_amounts_are_decimals_in_the_currency_scale(
    make: Build, country: str, currency: str
) -> None:
    institution = {"seed": 99, "currency": currency, "country_code": country, "slug": "s"}
    connector = make(institution=institution)
    await connector.authenticate(creds("user_good"))
    accounts = await connector.fetch_accounts()
    rows = await everything(connector)
    exponent = 0 if currency == "VND" else -2
    for amount in [t.amount for t in rows] + [a.balance for a in accounts]:
        assert isinstance(amount, Decimal)
        assert amount.as_tuple().exponent == exponent
    if currency == "VND":
        assert all(t.amount == t.amount.to_integral_value() for t in rows)
    assert {t.currency for t in rows} == {currency}
    current = accounts[0]
    if country in {"DE", "FR", "GB"}:
        assert current.iban
        assert current.iban.startswith(country)
        digits = "".join(str(int(ch, 36)) for ch in current.iban[4:] + current.iban[:4])
        assert int(digits) % 97 == 1
    else:
        assert current.iban is None
        assert current.number
        assert current.number.isdigit()
    assert all(a.holder_name for a in accounts)


async def test_state_is_json_and_never_holds_secrets(make: Build, clock: FakeClock) -> None:
    for username in sorted(SCENARIOS - {"user_slow"}):
        state = MemoryStateStore()
        connector = make(state)
        # every outcome is fine here; the state is the subject
        with contextlib.suppress(Interaction, ConnectorFailure):
            await connector.authenticate(creds(username))
        for answer in (Answer("code", "123456"), Answer("code", "blue"), Answer.poll()):
            clock.advance(seconds=5)
            with contextlib.suppress(Interaction, ConnectorFailure):
                await connector.resume(answer)
        text = json.dumps(state.load())
        assert "pass_good" not in text
        assert "123456" not in text
