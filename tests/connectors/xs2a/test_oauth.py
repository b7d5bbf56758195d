"""The OAuth2 SCA approach (pre-step and integrated) against the peer bank, whose authorization
server is authlib's: PKCE S256, ``state``, the code exchange and the unattended refresh."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bankhub.banks.formats import read_bankhub
from bankhub.connectors.base import (
    Answer,
    ConsentExpired,
    InteractionRejected,
    MemoryStateStore,
    NeedsRedirect,
    ProviderUnavailable,
)
from bankhub.connectors.testing import ContractCase, check_contract
from bankhub.connectors.xs2a import Xs2aConnector
from bankhub.connectors.xs2a.params import InstitutionConfigError, Xs2aParams
from tests.conftest import FakeClock
from tests.connectors.xs2a.conftest import RETURN_URL, Build, login, responder
from tests.connectors.xs2a.peer import OAUTH_CLIENT_ID, WELL_KNOWN, PeerBank

VARIANTS = ("pre-step", "integrated")


def oauth_params(bank: PeerBank, variant: str) -> dict[str, Any]:
    return {
        "sca_approaches": ["OAUTH", "REDIRECT"],
        "psu_id_required": False,
        "oauth_variant": variant,
        "oauth_client_id": OAUTH_CLIENT_ID,
        "oauth_metadata_url": f"{bank.origin}{WELL_KNOWN}" if variant == "pre-step" else None,
    }


@pytest.fixture
def oauth_bank(bank: PeerBank, clock: FakeClock) -> PeerBank:
    """The peer bank with OAuth as its SCA approach and its clock tied to the test's."""
    bank.approaches = ("OAUTH", "REDIRECT")
    bank.now = lambda: clock().timestamp()
    return bank


async def _connected(
    build: Build, bank: PeerBank, http: httpx.AsyncClient, variant: str
) -> tuple[Xs2aConnector, MemoryStateStore]:
    bank.oauth_variant = variant
    store = MemoryStateStore()
    connector = build("OAUTH", store, **oauth_params(bank, variant))
    assert await login(connector, responder(bank, http), {}) == 1
    return connector, store


@pytest.mark.parametrize("variant", VARIANTS)
async def test_each_oauth_variant_keeps_the_contract(
    variant: str, oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    oauth_bank.oauth_variant = variant
    report = await check_contract(
        ContractCase(
            name=f"OAUTH {variant}",
            build=lambda store: build("OAUTH", store, **oauth_params(oauth_bank, variant)),
            credentials={},
            respond=responder(oauth_bank, http),
            secrets=(),
        )
    )
    assert report.steps == 1
    assert {a.bank_id for a in report.accounts} == {"acc-giro", "acc-save", "acc-usd"}
    assert len(report.transactions["acc-giro"]) == len(oauth_bank.ledger("acc-giro"))
    (consent,) = oauth_bank.consents.values()
    assert consent.status == "valid"
    assert consent.oauth_scope == ("AIS" if variant == "pre-step" else f"AIS:{consent.id}")
    assert oauth_bank.oauth_records.token_requests[0] == "authorization_code"
    reads = [h for m, t, h in oauth_bank.requests if "/v1/accounts" in t]
    assert reads
    assert all(h["authorization"].startswith("Bearer ") for h in reads)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_the_authorization_request_carries_pkce_and_the_sessions_state(
    variant: str, oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    oauth_bank.oauth_variant = variant
    return_url = f"{RETURN_URL}?state=session-state-123"
    connector = build("OAUTH", **oauth_params(oauth_bank, variant))
    connector.context.return_url = return_url
    oauth_bank.oauth_client.redirect_uris = [RETURN_URL]
    with pytest.raises(NeedsRedirect) as redirect:
        await connector.authenticate({})
    url = httpx.URL(redirect.value.url)
    assert url.path == "/oauth/authorize"
    query = dict(url.params)
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    # the redirect URI is registered without a query; the connect page's state rides as state
    assert (query["redirect_uri"], query["state"]) == (RETURN_URL, "session-state-123")
    assert query["scope"] == (
        "AIS" if variant == "pre-step" else f"AIS:{next(iter(oauth_bank.consents))}"
    )
    answer = await responder(oauth_bank, http)(redirect.value)
    assert answer.params["state"] == "session-state-123"
    forged = Answer("redirect", params={**answer.params, "state": "someone-elses"})
    with pytest.raises(InteractionRejected, match="does not belong"):
        await connector.resume(forged)
    await connector.resume(answer)
    assert len(await connector.fetch_accounts()) == 3


async def test_a_code_without_its_verifier_is_refused_by_the_bank(
    oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    store = MemoryStateStore()
    connector = build("OAUTH", store, **oauth_params(oauth_bank, "integrated"))
    with pytest.raises(NeedsRedirect) as redirect:
        await connector.authenticate({})
    answer = await responder(oauth_bank, http)(redirect.value)
    state = store.load()
    state["pending"]["oauth"]["verifier"] = "x" * 43  # not the verifier of the challenge
    store.save(state)
    with pytest.raises(InteractionRejected, match="invalid_grant"):
        await connector.resume(answer)


async def test_denied_at_the_authorization_server_is_rejected(
    oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector = build("OAUTH", **oauth_params(oauth_bank, "integrated"))
    with pytest.raises(NeedsRedirect) as redirect:
        await connector.authenticate({})
    answer = await responder(oauth_bank, http, approve=False)(redirect.value)
    assert answer.params["error"] == "access_denied"
    with pytest.raises(InteractionRejected, match="access_denied"):
        await connector.resume(answer)
    (consent,) = oauth_bank.consents.values()
    assert consent.status == "rejected"


@pytest.mark.parametrize("variant", VARIANTS)
async def test_the_access_token_is_renewed_unattended_before_it_expires(
    variant: str, oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    _, store = await _connected(build, oauth_bank, http, variant)
    first = store.load()["oauth"]
    for _ in range(3):  # a day of unattended refreshes, each past the last token's lifetime
        clock.advance(hours=1)
        unattended = build(
            "OAUTH", MemoryStateStore(store.load()), **oauth_params(oauth_bank, variant)
        )
        # no user, no PSU-IP-Address
        unattended.context = replace(unattended.context, options={})
        await unattended.open_session()
        assert len(await unattended.fetch_accounts()) == 3
        store.save(unattended.context.state.load())
    assert oauth_bank.oauth_records.token_requests == ["authorization_code"] + ["refresh_token"] * 3
    held = store.load()["oauth"]
    assert held["access_token"] != first["access_token"]
    assert held["refresh_token"] != first["refresh_token"]  # rotated by the bank
    # the bank revoked what it replaced: the first tokens no longer read anything
    assert oauth_bank.oauth_records.by_refresh(first["refresh_token"]).revoked  # type: ignore[union-attr]


async def test_a_token_well_within_its_lifetime_is_not_renewed(
    oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    connector, _ = await _connected(build, oauth_bank, http, "integrated")
    clock.advance(minutes=30)
    await connector.open_session()
    assert oauth_bank.oauth_records.token_requests == ["authorization_code"]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_a_refresh_the_bank_refuses_is_an_expired_consent(
    variant: str, oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    connector, store = await _connected(build, oauth_bank, http, variant)
    oauth_bank.oauth_records.withdrawn.add(store.load()["oauth"]["refresh_token"])
    clock.advance(minutes=58)
    with pytest.raises(ConsentExpired, match="invalid_grant"):
        await connector.open_session()


async def test_an_expired_token_the_bank_refuses_is_an_expired_consent(
    oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    connector, store = await _connected(build, oauth_bank, http, "integrated")
    state = store.load()
    state["oauth"]["expires_at"] = (clock() + timedelta(days=1)).isoformat()  # bankhub's view
    store.save(state)
    clock.advance(hours=2)  # the bank's token lapsed meanwhile
    with pytest.raises(ConsentExpired, match="TOKEN_EXPIRED"):
        await connector.fetch_accounts()


async def test_metadata_of_another_issuer_is_refused(
    oauth_bank: PeerBank, build: Build, http: httpx.AsyncClient
) -> None:
    connector = build(
        "OAUTH",
        **{
            **oauth_params(oauth_bank, "pre-step"),
            "oauth_metadata_url": f"http://localhost:{httpx.URL(oauth_bank.origin).port}{WELL_KNOWN}",
        },
    )
    with pytest.raises(ProviderUnavailable, match="another issuer"):
        await connector.authenticate({})


def test_oauth_params_are_checked() -> None:
    base = {"slug": "b", "base_url": "https://api.bank/psd2", "sca_approaches": ["OAUTH"]}
    with pytest.raises(InstitutionConfigError, match="oauth_client_id"):
        Xs2aParams.from_institution(base)
    with pytest.raises(InstitutionConfigError, match="oauth_metadata_url is needed"):
        Xs2aParams.from_institution({**base, "oauth_client_id": "c", "oauth_variant": "pre-step"})
    with pytest.raises(InstitutionConfigError, match="oauth_variant"):
        Xs2aParams.from_institution({**base, "oauth_client_id": "c", "oauth_variant": "sideways"})
    params = Xs2aParams.from_institution({**base, "oauth_client_id": "c"})
    assert params.oauth_variant == "integrated"


def test_a_registry_entry_configures_the_oauth_approach() -> None:
    """bankhub's registry format carries the OAuth fields through to the connector; without a
    client id a bank that also offers REDIRECT is reached by redirect."""
    idp = "https://idp.oauth-bank.example/.well-known/oauth-authorization-server"
    document: dict[str, Any] = {
        "version": 1,
        "banks": [
            {
                "key": "oauth",
                "name": "OAuth Bank",
                "bic": "WELADED1BUB",
                "base_url": "https://api.oauth-bank.example/psd2",
                "sca_approaches": ["OAUTH", "REDIRECT"],
                "oauth_variant": "pre-step",
                "idp_urls": [
                    "https://idp.oauth-bank.example/.well-known/oauth-authorization-server"
                ],
                "oauth_client_id": "PSDDE-BAFIN-123456",
            },
            {
                "key": "plain",
                "name": "Plain Bank",
                "bic": "WELADED1BUB",
                "base_url": "https://api.plain-bank.example/psd2",
                "sca_approaches": ["OAUTH", "REDIRECT"],
                "preferred_sca_approach": "REDIRECT",
            },
            {
                "key": "bad",
                "name": "Bad Bank",
                "bic": "WELADED1BUB",
                "base_url": "https://api.bad-bank.example/psd2",
                "oauth_metadata_url": "http://idp.bad-bank.example/",
            },
        ],
    }
    registry = read_bankhub(json.dumps(document), yaml_text=False)
    oauth, plain = (Xs2aParams.from_institution(r.params) for r in registry.records)
    assert (oauth.preferred_sca_approach, oauth.oauth_variant) == ("OAUTH", "pre-step")
    assert oauth.oauth_metadata_url == idp
    assert oauth.oauth_client_id == "PSDDE-BAFIN-123456"
    assert plain.preferred_sca_approach == "REDIRECT"
    (refusal,) = registry.refusals
    assert "oauth_metadata_url" in refusal.reason
    assert "https://" in refusal.reason
