"""The GoCardless connector against the stateful peer provider: the requisition's life cycle,
every requisition status, reads, rate limits, tokens, reconnect and revoke."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from bankhub.connectors.base import (
    Answer,
    ConsentExpired,
    InteractionRejected,
    MemoryStateStore,
    NeedsDecoupledApproval,
    NeedsRedirect,
    ProviderUnavailable,
    RateLimited,
    ReadLimitCapability,
    TransactionStatus,
)
from bankhub.connectors.gocardless import GoCardlessConnector
from bankhub.connectors.gocardless.client import ConfigurationMissing, Secrets, rate_limit
from bankhub.connectors.gocardless.tokens import TokenKeeper
from tests.conftest import FakeClock
from tests.connectors.gocardless.conftest import RETURN_URL, Build, MemoryVault
from tests.connectors.gocardless.peer import IBANS, INSTITUTION, SECRET_ID, PeerProvider


async def start(connector: GoCardlessConnector) -> str:
    with pytest.raises(NeedsRedirect) as raised:
        await connector.authenticate({})
    return raised.value.url


async def visit(
    http: httpx.AsyncClient, link: str, choice: str = "approve", stop: str = ""
) -> dict[str, str]:
    """The user at the provider's pages: the query the provider sends them back with."""
    query = {"choice": choice, **({"stop": stop} if stop else {})}
    response = await http.get(link, params=query)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(RETURN_URL), location
    return {k: v for k, v in parse_qsl(urlsplit(location).query) if k != "state"}


async def linked(
    build: Build, http: httpx.AsyncClient, store: MemoryStateStore | None = None
) -> GoCardlessConnector:
    connector = build(store)
    back = await visit(http, await start(connector))
    await connector.resume(Answer("redirect", params=back))
    return connector


# --- the life cycle: link → redirect → linked → expired ------------------------------------------


async def test_link_redirect_linked_then_reads_and_expiry(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock
) -> None:
    store = MemoryStateStore()
    connector = build(store)
    link = await start(connector)
    requisition = peer.only_requisition()
    assert requisition.status == "CR"
    assert link == f"{peer.base_url}/start/{requisition.id}"
    # the agreement asks for what the institution allows and the consent page lists
    agreement = peer.agreements[requisition.agreement]
    assert agreement["max_historical_days"] == 540
    assert agreement["access_valid_for_days"] == 90
    assert agreement["access_scope"] == ["balances", "details", "transactions"]
    assert requisition.redirect == RETURN_URL

    back = await visit(http, link)
    assert back["ref"] == requisition.reference
    await connector.resume(Answer("redirect", params=back))
    assert requisition.status == "LN"
    consent = connector.consent().expires_at
    assert consent == clock() + timedelta(days=90)

    await connector.open_session()
    accounts = await connector.fetch_accounts()
    assert sorted(a.iban or "" for a in accounts) == sorted(IBANS)
    first = accounts[0]
    assert first.balance == Decimal("1234.56")
    assert first.available_balance == Decimal("1200.06")
    assert first.currency == "EUR"
    assert first.holder_name == "Erika Mustermann"
    rows = await connector.fetch_transactions(first, clock().date() - timedelta(days=30), None)
    booked = [r for r in rows if r.status is TransactionStatus.BOOKED]
    pending = [r for r in rows if r.status is TransactionStatus.PENDING]
    assert len(booked) == 5
    assert len(pending) == 1
    assert pending[0].bank_id == f"pending-{first.iban[-4:]}" if first.iban else False
    assert {r.amount for r in booked} == {
        Decimal("-10.25"),
        Decimal("20.25"),
        Decimal("-30.25"),
        Decimal("40.25"),
        Decimal("-50.25"),
    }
    # the requisition expires at the provider: the next unattended read ends the consent
    peer.set_status(requisition.id, "EX")
    with pytest.raises(ConsentExpired):
        await connector.open_session()
    with pytest.raises(ConsentExpired):
        await connector.fetch_accounts()


@pytest.mark.parametrize("peer", [{"languages": frozenset({"EN", "DE"})}], indirect=True)
async def test_the_users_language_is_asked_for_and_one_refused_is_left_out(
    build: Build, peer: PeerProvider
) -> None:
    await start(build(language="de"))
    assert peer.only_requisition().user_language == "DE"
    # Malay is not among the provider's languages: it answers 400 naming the field; the
    # requisition is made again without it, and the user goes on in the provider's choice
    peer.requisitions.clear()
    link = await start(build(language="ms"))
    requisition = peer.only_requisition()
    assert requisition.user_language is None
    assert link == f"{peer.base_url}/start/{requisition.id}"
    posts = [r for r in peer.requests if r[0] == "POST" and "requisitions" in r[1]]
    assert [p[3].get("user_language") for p in posts] == ["DE", "MS", None]


async def test_history_is_asked_within_the_agreement(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock
) -> None:
    connector = await linked(build, http)
    account = (await connector.fetch_accounts())[0]
    await connector.fetch_transactions(account, date(2000, 1, 1), None)
    (_, target, _, _) = peer.calls("GET", "/transactions/")[-1]
    query = dict(parse_qsl(urlsplit(target).query))
    assert query["date_from"] == (clock().date() - timedelta(days=539)).isoformat()


async def test_agreement_days_are_the_institutions(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider
) -> None:
    """An institution that keeps 90 days and allows 30 days of access gets exactly that; a
    catalogue entry asking for more than the provider's bounds is held to them."""
    connector = build(institution_id="SHORTBANK_SHRTGB2L", history_days=90, consent_days=30)
    await start(connector)
    agreement = peer.agreements[peer.only_requisition().agreement]
    assert (agreement["max_historical_days"], agreement["access_valid_for_days"]) == (90, 30)
    wide = build(history_days=5000, consent_days=400)
    assert (wide.history_days, wide.access_days) == (730, 90)


# --- every requisition status --------------------------------------------------------------------


@pytest.mark.parametrize("status", ["GC", "UA", "SA", "GA"])
async def test_unfinished_statuses_wait_then_link(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, status: str
) -> None:
    connector = build()
    back = await visit(http, await start(connector), stop=status)
    with pytest.raises(NeedsDecoupledApproval):
        await connector.resume(Answer("redirect", params=back))
    with pytest.raises(NeedsDecoupledApproval):
        await connector.resume(Answer.poll())
    peer.set_status(peer.only_requisition().id, "LN")
    await connector.resume(Answer.poll())
    assert len(await connector.fetch_accounts()) == 2


async def test_created_on_return_is_abandoned(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider
) -> None:
    """Back at bankhub with the requisition still at CR: the user did not go through."""
    connector = build()
    await start(connector)
    requisition = peer.only_requisition()
    with pytest.raises(InteractionRejected, match="not given"):
        await connector.resume(Answer("redirect", params={"ref": requisition.reference}))
    assert requisition.id not in peer.requisitions  # the unused requisition is deleted


async def test_rejected_at_the_bank(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider
) -> None:
    connector = build()
    back = await visit(http, await start(connector), choice="decline")
    assert back["error"] == "UserCancelledSession"
    with pytest.raises(InteractionRejected, match="rejected"):
        await connector.resume(Answer("redirect", params=back))


async def test_expired_before_it_was_finished(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider
) -> None:
    connector = build()
    await start(connector)
    requisition = peer.only_requisition()
    peer.set_status(requisition.id, "EX")
    with pytest.raises(InteractionRejected, match="expired"):
        await connector.resume(Answer("redirect", params={"ref": requisition.reference}))


async def test_another_requisitions_reference_is_refused(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider
) -> None:
    connector = build()
    await visit(http, await start(connector))
    with pytest.raises(InteractionRejected, match="another link"):
        await connector.resume(Answer("redirect", params={"ref": "someone-else"}))


@pytest.mark.parametrize("status", ["EX", "RJ"])
async def test_unattended_refresh_after_the_link_ended(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, status: str
) -> None:
    connector = await linked(build, http)
    peer.set_status(peer.only_requisition().id, status)
    with pytest.raises(ConsentExpired):
        await connector.open_session()


@pytest.mark.parametrize("status", ["CR", "GC", "UA", "SA", "GA"])
async def test_unattended_refresh_of_a_requisition_not_linked(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, status: str
) -> None:
    connector = await linked(build, http)
    peer.set_status(peer.only_requisition().id, status)
    with pytest.raises(ProviderUnavailable, match=status):
        await connector.open_session()


async def test_agreement_end_is_known_without_asking(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock
) -> None:
    connector = await linked(build, http)
    clock.advance(days=90)
    before = len(peer.requests)
    with pytest.raises(ConsentExpired):
        await connector.open_session()
    assert len(peer.requests) == before


# --- rate limits ---------------------------------------------------------------------------------


async def test_daily_limit_per_account(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock
) -> None:
    """Four reads a day per account: the fourth says so (next_read_possible_at), the fifth is
    refused with the provider's reset as the wait."""
    connector = await linked(build, http)
    assert isinstance(connector, ReadLimitCapability)
    midnight = datetime.combine(clock().date() + timedelta(days=1), datetime.min.time(), UTC)
    for read in range(4):
        accounts = await connector.fetch_accounts()
        for account in accounts:
            await connector.fetch_transactions(account, None, None)
        expected = midnight if read == 3 else None
        assert connector.next_read_possible_at() == expected
    with pytest.raises(RateLimited) as refused:
        await connector.fetch_accounts()
    assert refused.value.retry_after == (midnight - clock()).total_seconds()
    clock.advance(days=1)
    assert len(await connector.fetch_accounts()) == 2


def test_rate_limit_headers_in_both_spellings() -> None:
    plain = httpx.Headers(
        {
            "X-RateLimit-Account-Success-Limit": "4",
            "X-RateLimit-Account-Success-Remaining": "0",
            "X-RateLimit-Account-Success-Reset": "3600",
        }
    )
    wsgi = httpx.Headers({"HTTP_X_RATELIMIT_LIMIT": "100", "HTTP_X_RATELIMIT_REMAINING": "x"})
    account = rate_limit(plain, "-Account-Success")
    assert (account.limit, account.remaining, account.reset_seconds) == (4, 0, 3600.0)
    general = rate_limit(wsgi)
    assert (general.limit, general.remaining, general.reset_seconds) == (100, None, None)


async def test_general_rate_limit(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider
) -> None:
    connector = await linked(build, http)
    peer.fail(
        "/requisitions/",
        429,
        {"summary": "Rate limit exceeded", "detail": "Try again in 30 seconds", "status_code": 429},
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"},
    )
    with pytest.raises(RateLimited) as refused:
        await connector.open_session()
    assert refused.value.retry_after == 30.0
    assert "Try again in 30 seconds" in refused.value.message


# --- tokens --------------------------------------------------------------------------------------


async def test_one_pair_for_every_login(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, vault: MemoryVault
) -> None:
    await linked(build, http)
    await linked(build, http)
    assert peer.tokens_issued == 1
    assert vault.stores == 1


async def test_access_token_renewed_before_it_expires(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock, vault: MemoryVault
) -> None:
    connector = await linked(build, http)
    first = vault.pair
    assert first is not None
    clock.now = first.access_expires_at - timedelta(minutes=29)  # inside the renewal margin
    await connector.open_session()
    assert peer.tokens_refreshed == 1
    assert peer.tokens_issued == 1
    assert vault.pair is not None
    assert vault.pair.access != first.access
    assert vault.pair.refresh == first.refresh


async def test_spent_refresh_token_obtains_a_new_pair(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock, vault: MemoryVault
) -> None:
    await linked(build, http)
    first = vault.pair
    assert first is not None
    clock.now = first.refresh_expires_at + timedelta(seconds=1)
    connector = build()
    await start(connector)
    assert peer.tokens_issued == 2
    assert peer.tokens_refreshed == 0


async def test_a_token_the_provider_refuses_is_renewed_once(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, vault: MemoryVault
) -> None:
    connector = await linked(build, http)
    assert vault.pair is not None
    peer.access.clear()  # the provider revoked every access token early
    await connector.open_session()
    assert peer.tokens_refreshed == 1


async def test_two_processes_converge_on_one_pair(
    http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock, vault: MemoryVault
) -> None:
    """Two processes whose pairs lapse at once: the second to store loses the race and takes
    the winner's pair instead of overwriting it."""
    one = TokenKeeper(vault, http, peer.base_url, clock)
    two = TokenKeeper(vault, http, peer.base_url, clock)
    first = await one.access_token()
    assert await two.access_token() == first
    pair = vault.pair
    assert pair is not None
    clock.now = pair.access_expires_at
    # the second process renews between the first one's read and its store
    original_load = vault.load

    async def racing_load():  # type: ignore[no-untyped-def]
        stored = await original_load()
        vault.load = original_load  # type: ignore[method-assign]
        await two.access_token()
        return stored

    vault.load = racing_load  # type: ignore[method-assign]
    token = await one.access_token()
    assert vault.pair is not None
    assert token == vault.pair.access
    assert vault.stores == 2  # the first pair and the winner's renewal, not the loser's


async def test_not_configured(
    http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock
) -> None:
    keeper = TokenKeeper(MemoryVault(None), http, peer.base_url, clock)
    with pytest.raises(ConfigurationMissing, match="gocardless-secret"):
        await keeper.access_token()
    wrong = TokenKeeper(MemoryVault(Secrets(SECRET_ID, "wrong")), http, peer.base_url, clock)
    with pytest.raises(ConfigurationMissing, match="refused"):
        await wrong.access_token()
    assert "wrong" not in repr(Secrets(SECRET_ID, "wrong"))


# --- reconnect and revoke ------------------------------------------------------------------------


async def test_reconnect_renews_the_agreement_with_stable_account_ids(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock
) -> None:
    store = MemoryStateStore()
    connector = await linked(build, http, store)
    before = {a.iban: a.bank_id for a in await connector.fetch_accounts()}
    old = peer.only_requisition()
    clock.advance(days=80)
    again = build(MemoryStateStore(store.load()))
    back = await visit(http, await start(again))
    await again.resume(Answer("redirect", params=back))
    after = {a.iban: a.bank_id for a in await again.fetch_accounts()}
    assert after == before
    new = peer.only_requisition()  # the replaced requisition was deleted
    assert new.id != old.id
    assert set(new.accounts).isdisjoint(old.accounts)
    assert again.consent().expires_at == clock() + timedelta(days=90)
    assert peer.linked_before[(INSTITUTION, IBANS[0])] == 2


async def test_revoke_deletes_the_requisition(
    build: Build, http: httpx.AsyncClient, peer: PeerProvider
) -> None:
    store = MemoryStateStore()
    connector = await linked(build, http, store)
    requisition = peer.only_requisition()
    await connector.revoke()
    assert requisition.id not in peer.requisitions
    assert peer.calls("DELETE", f"/requisitions/{requisition.id}/")
    assert store.load() == {}
    await build(MemoryStateStore({"requisition_id": requisition.id})).revoke()  # already gone
