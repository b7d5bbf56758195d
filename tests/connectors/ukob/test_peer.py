"""The UK Open Banking connector against the peer bank: an authlib authorization server (JAR,
``private_key_jwt``, PKCE, hybrid and code flows, refresh) behind mutual TLS, and a stateful
resource server (consents, accounts, balances, paged transactions, revocation)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bankhub.connectors.base import (
    AccountType,
    Answer,
    AuthFlow,
    ConsentExpired,
    Interaction,
    InteractionRejected,
    MemoryStateStore,
    NeedsRedirect,
    ProviderUnavailable,
    RateLimited,
    TransactionStatus,
)
from bankhub.connectors.registry import default_registry
from bankhub.connectors.testing import ContractCase, check_contract
from bankhub.connectors.ukob import UkobParams, fapi
from bankhub.connectors.xs2a.params import InstitutionConfigError
from tests.conftest import FakeClock
from tests.connectors.ukob.conftest import (
    FINANCIAL_ID,
    PSU_IP,
    REDIRECT_URI,
    Build,
    login,
    visit,
)
from tests.connectors.ukob.peer import ObBank


async def test_hybrid_login_then_accounts_and_paged_transactions(
    build: Build, bank: ObBank, clock: FakeClock
) -> None:
    store = MemoryStateStore()
    connector = build(store)
    reply = await login(connector)
    assert {"code", "id_token", "state"} <= set(reply)  # the hybrid flow's fragment
    assert reply["state"] == "connect-session-state"  # the connect session's own state

    (consent,) = bank.consents.values()
    assert consent.status == "Authorised"
    (created,) = [e for e in bank.requests_to("/account-access-consents") if e.method == "POST"]
    assert created.headers["x-fapi-customer-ip-address"] == PSU_IP
    assert created.headers["x-fapi-financial-id"] == FINANCIAL_ID
    assert consent.permissions == [
        "ReadAccountsDetail",
        "ReadBalances",
        "ReadTransactionsBasic",
        "ReadTransactionsCredits",
        "ReadTransactionsDebits",
        "ReadTransactionsDetail",
    ]
    assert consent.expires is not None
    assert consent.expires - clock() == timedelta(days=90)
    assert consent.transactions_from == (
        f"{(clock() - timedelta(days=730)).date().isoformat()}T00:00:00+00:00"
    )

    state = store.load()
    assert state["consent_id"] == consent.id
    assert state["refresh_token"]
    assert state["access_token"]
    assert "pending" not in state
    expiry = connector.consent().expires_at
    assert expiry is not None
    assert expiry.tzinfo is not None
    assert expiry == consent.expires.replace(microsecond=0)

    # an unattended run: a new connector from the saved state, the user not present
    bank.exchanges.clear()
    later = build(MemoryStateStore(store.load()), present=False)
    await later.open_session()
    accounts = await later.fetch_accounts()
    assert [(a.bank_id, a.type, a.balance, a.available_balance) for a in accounts] == [
        ("acc-current", AccountType.CURRENT, Decimal("1230.45"), Decimal("1230.45")),
        ("acc-savings", AccountType.SAVINGS, Decimal("-15.00"), Decimal("-15.00")),
    ]
    current = accounts[0]
    assert current.iban == "GB29NWBK60161331926819"
    assert current.number == "80200110203345"
    assert current.holder_name == "Mr Kevin Smith"
    assert current.name == "Everyday"

    rows = await later.fetch_transactions(current, None, None)
    assert [(r.bank_id, r.amount, r.status) for r in rows] == [
        ("acc-current-t0", Decimal("-12.50"), TransactionStatus.BOOKED),
        ("acc-current-t1", Decimal("2500.00"), TransactionStatus.BOOKED),
        ("acc-current-t2", Decimal("-99.99"), TransactionStatus.BOOKED),
        ("acc-current-t3", Decimal("-7.25"), TransactionStatus.PENDING),
    ]  # the rejected one never moved money
    assert rows[1].counterparty_name == "Employer Ltd"
    assert rows[0].counterparty_account == "40400412345678"
    pages = bank.requests_to("/acc-current/transactions")
    assert [p.query.get("page") for p in pages] == [None, "2", "3"]  # Links.Next, followed
    reads = [e for e in bank.exchanges if "/open-banking/" in e.path]
    assert reads
    assert all("x-fapi-customer-ip-address" not in e.headers for e in reads)
    assert all(e.headers["x-fapi-financial-id"] == FINANCIAL_ID for e in reads)
    assert all(e.headers.get("x-fapi-interaction-id") for e in reads)


@pytest.mark.parametrize("bank", [{"response_types": ("code",)}], indirect=True)
async def test_code_flow_with_pkce(build: Build, bank: ObBank) -> None:
    store = MemoryStateStore()
    reply = await login(build(store))
    assert "id_token" not in reply
    assert reply["code"]
    (token_call,) = [
        e for e in bank.requests_to("/token") if e.status == 200 and "refresh_token" in e.body
    ]
    assert store.load()["access_token"] == token_call.body["access_token"]
    assert len(await build(MemoryStateStore(store.load())).fetch_accounts()) == 2


async def test_the_request_object_is_signed_and_names_the_consent(
    build: Build, bank: ObBank
) -> None:
    with pytest.raises(NeedsRedirect) as caught:
        await build().authenticate({})
    url = caught.value.url
    assert url.startswith(f"{bank.public_origin}/authorize?")
    request = dict(__import__("httpx").URL(url).params)["request"]
    header = jwt.get_unverified_header(request)
    assert header["alg"] == "PS256"
    assert header["kid"] == "bankhub-signing-1"
    claims = jwt.decode(request, options={"verify_signature": False})
    (consent,) = bank.consents.values()
    assert claims["claims"]["id_token"]["openbanking_intent_id"] == {
        "value": consent.id,
        "essential": True,
    }
    assert claims["claims"]["id_token"]["acr"]["essential"] is True
    assert claims["redirect_uri"] == REDIRECT_URI
    assert claims["aud"] == bank.public_origin
    assert claims["exp"] - claims["iat"] <= 3600
    assert claims["code_challenge_method"] == "S256"
    # the connect page's language, inside the signed request only (FAPI 1 Advanced 5.2.2)
    assert claims["ui_locales"] == "vi"
    assert "ui_locales" not in dict(__import__("httpx").URL(url).params)


async def test_a_key_the_bank_does_not_know_is_refused(build: Build, bank: ObBank) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ProviderUnavailable, match="client registration"):
        await build(signing_key=stranger).authenticate({})
    assert not bank.consents


async def test_no_client_certificate_no_token(build: Build, bank: ObBank) -> None:
    with pytest.raises(ProviderUnavailable):
        await build(qwac=False).authenticate({})
    assert not bank.consents


async def test_the_user_denies(build: Build, bank: ObBank) -> None:
    with pytest.raises(InteractionRejected, match="not approved"):
        await login(build(), decision="deny")


@pytest.mark.parametrize(
    "fault", ["forged", "c_hash", "s_hash", "intent", "expired", "audience", "nonce", "state"]
)
async def test_a_front_channel_answer_that_does_not_hold_is_refused(
    build: Build, bank: ObBank, fault: str
) -> None:
    store = MemoryStateStore()
    connector = build(store)
    with pytest.raises(NeedsRedirect) as caught:
        await connector.authenticate({})
    reply = await visit(caught.value)
    claims = jwt.decode(reply["id_token"], options={"verify_signature": False})
    signer: rsa.RSAPrivateKey = bank.key  # the bank's own key: only the named claim is wrong
    if fault == "forged":
        signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif fault == "c_hash":
        claims["c_hash"] = fapi.half_hash("another-code")
    elif fault == "s_hash":
        claims["s_hash"] = fapi.half_hash("another-state")
    elif fault == "intent":
        claims["openbanking_intent_id"] = "aac-another-consent"
    elif fault == "expired":
        claims["exp"] = int(time.time()) - 3600
    elif fault == "audience":
        claims["aud"] = ["another-client"]
    elif fault == "nonce":
        claims["nonce"] = "another-login"
    else:
        reply["state"] = "another-session"
    reply["id_token"] = jwt.encode(
        claims, signer, algorithm="PS256", headers={"kid": "bank-id-token-1"}
    )
    with pytest.raises(InteractionRejected):
        await connector.resume(Answer("redirect", params=reply))
    assert "access_token" not in store.load()
    # the code was never exchanged
    assert not [e for e in bank.requests_to("/token") if "refresh_token" in (e.body or {})]


async def test_an_expired_access_token_is_renewed_unattended(build: Build, bank: ObBank) -> None:
    store = MemoryStateStore()
    await login(build(store))
    first = store.load()
    # the token's recorded lifetime has passed: open_session renews it before any read
    stale = {**first, "access_expires_at": "2000-01-01T00:00:00+00:00"}
    later_store = MemoryStateStore(stale)
    await build(later_store, present=False).open_session()
    renewed = later_store.load()
    assert renewed["access_token"] != first["access_token"]
    assert renewed["refresh_token"] != first["refresh_token"]  # rotated
    # the bank drops the access token early: a 401 is cured by one renewal
    bank.tokens[renewed["access_token"]].expires_at = 0
    accounts = await build(later_store, present=False).fetch_accounts()
    assert len(accounts) == 2
    assert later_store.load()["access_token"] != renewed["access_token"]


async def test_a_revoked_consent_ends_the_login(build: Build, bank: ObBank) -> None:
    store = MemoryStateStore()
    await login(build(store))
    (consent,) = bank.consents.values()
    consent.status = "Revoked"  # the user revoked it in the bank's dashboard
    with pytest.raises(ConsentExpired):
        await build(MemoryStateStore(store.load()), present=False).fetch_accounts()
    stale = {**store.load(), "access_expires_at": "2000-01-01T00:00:00+00:00"}
    with pytest.raises(ConsentExpired):  # and the refresh token with it (invalid_grant)
        await build(MemoryStateStore(stale), present=False).open_session()


async def test_a_consent_past_its_expiry_ends_the_login_without_a_call(
    build: Build, bank: ObBank, clock: FakeClock
) -> None:
    store = MemoryStateStore()
    await login(build(store))
    bank.exchanges.clear()
    clock.advance(days=90, seconds=1)
    with pytest.raises(ConsentExpired, match="expired"):
        await build(MemoryStateStore(store.load()), present=False).open_session()
    assert not bank.exchanges


async def test_revoke_deletes_the_consent(build: Build, bank: ObBank) -> None:
    store = MemoryStateStore()
    connector = build(store)
    await login(connector)
    await connector.revoke()
    (consent,) = bank.consents.values()
    assert consent.status == "Revoked"
    assert store.load() == {}
    (deleted,) = [e for e in bank.exchanges if e.method == "DELETE"]
    assert deleted.status == 204


async def test_429_is_rate_limited_with_the_banks_retry_time(build: Build, bank: ObBank) -> None:
    store = MemoryStateStore()
    await login(build(store))
    bank.fail("/accounts", 429, "120")
    with pytest.raises(RateLimited) as caught:
        await build(MemoryStateStore(store.load()), present=False).fetch_accounts()
    assert caught.value.retry_after == 120.0


async def test_history_and_consent_days_drive_the_consent(
    build: Build, bank: ObBank, clock: FakeClock
) -> None:
    with pytest.raises(NeedsRedirect):
        await build(history_days=30, consent_days=7).authenticate({})
    (consent,) = bank.consents.values()
    assert consent.expires is not None
    assert consent.expires - clock() == timedelta(days=7)
    assert consent.transactions_from == (
        f"{(clock() - timedelta(days=30)).date().isoformat()}T00:00:00+00:00"
    )
    (created,) = [e for e in bank.exchanges if e.method == "POST" and e.status == 201]
    assert json.dumps(created.body)  # recorded


async def test_the_connector_keeps_the_contract(build: Build, bank: ObBank) -> None:
    """The platform's contract suite: typed outcomes, Decimal amounts, stable ids, JSON-only
    state, date filters that hold, unattended reopening (a fresh access token each time)."""

    async def respond(interaction: Interaction) -> Answer:
        assert isinstance(interaction, NeedsRedirect)
        return Answer("redirect", params=await visit(interaction))

    report = await check_contract(
        ContractCase(name="ukob", build=lambda store: build(store), credentials={}, respond=respond)
    )
    assert report.steps == 1
    assert report.identity is None
    assert {a.bank_id for a in report.accounts} == {"acc-current", "acc-savings"}
    assert len(report.transactions["acc-current"]) == 4


def test_the_connector_is_built_in_and_its_params_are_checked() -> None:
    registry = default_registry()
    assert "ukob" in registry.ids()
    assert registry.info("ukob").auth_flows == (AuthFlow.REDIRECT,)
    good = {
        "base_url": "https://ob.bank.example/open-banking/v3.1/aisp",
        "well_known_url": "https://auth.bank.example/.well-known/openid-configuration",
        "client_id": "c",
        "signing_key_id": "k",
    }
    assert UkobParams.from_institution(good).permissions[0] == "ReadAccountsDetail"
    for broken, problem in (
        ({"client_id": None}, "params.client_id"),
        ({"well_known_url": "auth.bank.example"}, "params.well_known_url"),
        ({"permissions": ["ReadAccountsDetail"]}, "must include ReadBalances"),
        ({"permissions": ["ReadEverything"]}, "Open Banking permission codes"),
        ({"response_type": "token"}, "params.response_type"),
        ({"consent_days": 0}, "params.consent_days"),
    ):
        with pytest.raises(InstitutionConfigError, match=problem):
            UkobParams.from_institution({**good, **broken})
