"""The XS2A connector against Prism serving the Berlin Group NextGenPSD2 1.3.12 spec.

Prism answers with the spec's static examples, so these tests are about the requests (every one
must be valid against the spec: no ``sl-violations`` about the request) and about parsing the
spec's own examples, not about state.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bankhub.connectors.base import (
    Answer,
    ConnectorContext,
    MemoryStateStore,
    NeedsDecoupledApproval,
    NeedsRedirect,
    ProviderUnavailable,
    TransactionStatus,
)
from bankhub.connectors.xs2a import Xs2aConnector
from bankhub.connectors.xs2a.signing import RequestSigner
from tests.conftest import FakeClock
from tests.connectors.xs2a.conftest import PSU_ID, PSU_IP, PSU_LANGUAGE, RETURN_URL, responder
from tests.connectors.xs2a.eidas_pki import EidasPki
from tests.connectors.xs2a.peer import OAUTH_CLIENT_ID, WELL_KNOWN, PeerBank, running
from tests.support.prism import request_violations

#: the spec's examples are dated October 2017
EXAMPLE_DAY = datetime(2017, 10, 30, 9, 0, tzinfo=UTC)
CONSENT_EXAMPLES = {
    "DECOUPLED": "Response in case of the decoupled approach",
    "EMBEDDED": "Response in case of the embedded approach",
}


class Recorder:
    """Every exchange with Prism and what Prism found wrong with each request."""

    def __init__(self, consent_example: str | None) -> None:
        self.consent_example = consent_example
        self.exchanges: list[tuple[str, str, int, list[dict[str, Any]]]] = []
        self.headers: list[httpx.Headers] = []

    async def on_request(self, request: httpx.Request) -> None:
        if self.consent_example and request.method == "POST" and request.url.path == "/v1/consents":
            request.headers["Prefer"] = f"example={self.consent_example}"

    async def on_response(self, response: httpx.Response) -> None:
        request = response.request
        self.headers.append(request.headers)
        self.exchanges.append(
            (request.method, request.url.path, response.status_code, request_violations(response))
        )

    def violations(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        return [(m, p, v) for m, p, _, v in self.exchanges if v]

    def calls(self) -> list[tuple[str, str, int]]:
        return [(m, p, s) for m, p, s, _ in self.exchanges]


async def _client(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [recorder.on_request],
        "response": [recorder.on_response],
    }
    async with httpx.AsyncClient(event_hooks=hooks) as client:
        yield client


def _connector(
    prism_url: str,
    http: httpx.AsyncClient,
    store: MemoryStateStore,
    approach: str,
    signer: RequestSigner | None = None,
    **extra: Any,
) -> Xs2aConnector:
    return Xs2aConnector(
        ConnectorContext(
            institution={
                "slug": "prism-testbank",
                "name": "Prism Testbank",
                "base_url": prism_url,
                "sca_approaches": ["REDIRECT", "DECOUPLED", "EMBEDDED"],
                "preferred_sca_approach": approach,
                "decoupled_poll_seconds": 0,
                **extra,
            },
            http=http,
            state=store,
            clock=FakeClock(EXAMPLE_DAY),
            return_url=RETURN_URL,
            options={
                "psu_ip_address": PSU_IP,
                "user_language": PSU_LANGUAGE,
                "request_signer": signer,
            },
        )
    )


async def test_redirect_consent_and_every_read_are_valid_requests(prism_url: str) -> None:
    recorder = Recorder(None)
    async for http in _client(recorder):
        store = MemoryStateStore()
        connector = _connector(prism_url, http, store, "REDIRECT")
        with pytest.raises(NeedsRedirect) as redirect:
            await connector.authenticate({})
        assert redirect.value.url == "https://www.testbank.com/authentication/1234-wertiq-983"
        await connector.resume(Answer("redirect", params={}))
        assert store.load() == {"consent_id": "1234-wertiq-983", "valid_until": "2017-11-01"}
        assert connector.consent().expires_at == datetime(2017, 11, 2, tzinfo=UTC)

        accounts = await connector.fetch_accounts()
        assert [a.bank_id for a in accounts] == [
            "3dc3d5b3-7023-4848-9853-f5400a64e80f",
            "3dc3d5b3-7023-4848-9853-f5400a64e81e",
        ]
        main = accounts[0]
        assert (main.name, main.iban, main.currency) == (
            "Main Account",
            "DE2310010010123456789",
            "EUR",
        )
        assert (main.balance, main.available_balance) == (Decimal("500.00"), Decimal("900.00"))

        rows = await connector.fetch_transactions(main, None, None)
        assert [(r.bank_id, r.amount, r.status) for r in rows] == [
            ("1234567", Decimal("256.67"), TransactionStatus.BOOKED),
            ("1234568", Decimal("343.01"), TransactionStatus.BOOKED),
            ("1234569", Decimal("-100.03"), TransactionStatus.PENDING),
        ]
        assert rows[2].booking_date.isoformat() == "2017-10-26"  # pending: the value date
        assert rows[0].meta == {"creditorAccount": "DE67100100101306118605"}

        unattended = _connector(prism_url, http, MemoryStateStore(store.load()), "REDIRECT")
        await unattended.open_session()
        assert len(await unattended.fetch_accounts()) == 2
        await unattended.revoke()

    calls = [(m, p) for m, p, _ in recorder.calls()]
    assert calls[:3] == [
        ("POST", "/v1/consents"),
        ("GET", "/v1/consents/1234-wertiq-983/status"),
        ("GET", "/v1/consents/1234-wertiq-983"),
    ]
    assert ("GET", "/v1/accounts/3dc3d5b3-7023-4848-9853-f5400a64e80f/balances") in calls
    assert ("GET", "/v1/accounts/3dc3d5b3-7023-4848-9853-f5400a64e80f/transactions") in calls
    assert calls[-1] == ("DELETE", "/v1/consents/1234-wertiq-983")
    assert all(status < 300 for _, _, status in recorder.calls())
    assert recorder.violations() == []


async def test_account_list_with_balances_is_a_valid_request(prism_url: str) -> None:
    recorder = Recorder(None)
    async for http in _client(recorder):
        store = MemoryStateStore({"consent_id": "1234-wertiq-983", "valid_until": "2017-11-01"})
        connector = _connector(prism_url, http, store, "REDIRECT", with_balance=True)
        await connector.open_session()
        await connector.fetch_accounts()
    assert ("GET", "/v1/accounts", 200) in recorder.calls()
    assert recorder.violations() == []


async def test_decoupled_consent_and_authorisation_are_valid_requests(prism_url: str) -> None:
    recorder = Recorder(CONSENT_EXAMPLES["DECOUPLED"])
    async for http in _client(recorder):
        connector = _connector(prism_url, http, MemoryStateStore(), "DECOUPLED")
        with pytest.raises(NeedsDecoupledApproval, match="BankApp"):
            await connector.authenticate({"psu_id": PSU_ID})
        await connector.resume(Answer.poll())
        assert len(await connector.fetch_accounts()) == 2
    assert [(m, p) for m, p, _ in recorder.calls()][:2] == [
        ("POST", "/v1/consents"),
        ("POST", "/v1/consents/1234-wertiq-983/authorisations"),
    ]
    assert recorder.violations() == []


async def test_embedded_password_body_trips_only_the_specs_own_oneof(prism_url: str) -> None:
    """The spec lists ``{}`` among the ``oneOf`` alternatives of an authorisation body, so any
    body with content (``{"psuData": …}``) matches two alternatives and Prism must flag it.
    Everything else about the embedded requests must be valid."""
    recorder = Recorder(CONSENT_EXAMPLES["EMBEDDED"])
    async for http in _client(recorder):
        connector = _connector(prism_url, http, MemoryStateStore(), "EMBEDDED")
        with pytest.raises(ProviderUnavailable, match="HTTP 4"):
            await connector.authenticate({"psu_id": PSU_ID, "password": "start12"})
    ((method, path, found),) = recorder.violations()
    assert (method, path) == ("POST", "/v1/consents/1234-wertiq-983/authorisations")
    # nothing else: no missing header, no "must have required property 'psuData'"
    assert found == [
        {
            "location": ["request", "body"],
            "severity": "Error",
            "code": "oneOf",
            "message": "Request body must match exactly one schema in oneOf",
        }
    ]


async def test_signed_requests_are_valid_requests(prism_url: str, eidas_pki: EidasPki) -> None:
    """test_signed_requests_are_valid_requests — eIDAS: with the QSealC signing, every request
    of a redirect consent, its reads and revocation, and of a decoupled consent, carries
    Digest, Signature, TPP-Signature-Certificate and Date, and Prism finds nothing wrong with
    any of them (the spec's ``byte`` format of the certificate header included)."""
    key = serialization.load_pem_private_key(eidas_pki.qseal.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signer = RequestSigner(eidas_pki.qseal.certificate, key, FakeClock(EXAMPLE_DAY))
    redirect, decoupled = Recorder(None), Recorder(CONSENT_EXAMPLES["DECOUPLED"])
    async for http in _client(redirect):
        store = MemoryStateStore()
        connector = _connector(prism_url, http, store, "REDIRECT", signer)
        with pytest.raises(NeedsRedirect):
            await connector.authenticate({})
        await connector.resume(Answer("redirect", params={}))
        accounts = await connector.fetch_accounts()
        await connector.fetch_transactions(accounts[0], None, None)
        await connector.revoke()
    async for http in _client(decoupled):
        connector = _connector(prism_url, http, MemoryStateStore(), "DECOUPLED", signer)
        with pytest.raises(NeedsDecoupledApproval):
            await connector.authenticate({"psu_id": PSU_ID})
        await connector.resume(Answer.poll())
    for recorder in (redirect, decoupled):
        assert len(recorder.exchanges) >= 3
        assert all(status < 300 for _, _, status in recorder.calls())
        assert recorder.violations() == []
        for headers in recorder.headers:
            assert headers["digest"].startswith("SHA-256=")
            assert headers["signature"].startswith('keyId="SN=')
            assert headers["tpp-signature-certificate"]
            assert headers["date"] == "Mon, 30 Oct 2017 09:00:00 GMT"
    consent = decoupled.headers[0]
    assert 'headers="digest x-request-id date psu-id tpp-redirect-uri"' in consent["signature"]


class _ScaOAuthLink(httpx.AsyncBaseTransport):
    """Prism's consent examples carry ``scaRedirect``; a bank of the integrated OAuth variant
    sends ``scaOAuth`` instead. Only that link of Prism's answer is changed, to name the peer
    bank's authorization server; every request still goes to Prism as sent."""

    def __init__(self, metadata_url: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.metadata_url = metadata_url

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "POST" or request.url.path != "/v1/consents":
            return response
        body = json.loads(await response.aread())
        links = body.get("_links", {})
        links.pop("scaRedirect", None)
        links["scaOAuth"] = {"href": self.metadata_url}
        headers = [(k, v) for k, v in response.headers.items() if k != "content-length"]
        return httpx.Response(response.status_code, headers=headers, json=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("variant", ["pre-step", "integrated"])
async def test_oauth_consent_and_every_read_are_valid_requests(
    prism_url: str, variant: str
) -> None:
    """The OAuth2 approach: the PSU authorises at the peer bank's authorization server
    (authlib), and every XS2A request, each with its Bearer token, is valid against the spec."""
    recorder = Recorder(None)
    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [recorder.on_request],
        "response": [recorder.on_response],
    }
    with running(PeerBank(oauth_variant=variant)) as bank:
        metadata = f"{bank.origin}{WELL_KNOWN}"
        transport = _ScaOAuthLink(metadata) if variant == "integrated" else None
        async with httpx.AsyncClient(event_hooks=hooks, transport=transport) as http:
            store = MemoryStateStore()
            connector = _connector(
                prism_url,
                http,
                store,
                "OAUTH",
                sca_approaches=["OAUTH", "REDIRECT"],
                oauth_variant=variant,
                oauth_client_id=OAUTH_CLIENT_ID,
                oauth_metadata_url=metadata if variant == "pre-step" else None,
            )
            with pytest.raises(NeedsRedirect) as redirect:
                await connector.authenticate({})
            assert redirect.value.url.startswith(f"{bank.origin}/oauth/authorize?")
            answer = await responder(bank, http)(redirect.value)
            if variant == "pre-step":
                # Prism's consent still asks for a redirect SCA after the pre-step
                with pytest.raises(NeedsRedirect):
                    await connector.resume(answer)
                answer = Answer("redirect", params={})
            await connector.resume(answer)
            assert store.load()["oauth"]["access_token"]
            accounts = await connector.fetch_accounts()
            await connector.fetch_transactions(accounts[0], None, None)
            await connector.revoke()
    prism = [
        (m, p, s)
        for (m, p, s), h in zip(recorder.calls(), recorder.headers, strict=True)
        if h.get("host", "") in prism_url
    ]
    assert ("GET", "/v1/accounts/3dc3d5b3-7023-4848-9853-f5400a64e80f/transactions", 200) in prism
    assert all(status < 300 for _, _, status in prism)
    assert recorder.violations() == []
    bearer = [h for h in recorder.headers if h.get("host", "") in prism_url and "consent-id" in h]
    assert bearer
    assert all(h["authorization"].startswith("Bearer ") for h in bearer)
