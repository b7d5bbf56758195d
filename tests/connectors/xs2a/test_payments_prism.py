"""XS2A payment initiation against Prism serving the Berlin Group NextGenPSD2 1.3.12 spec.

Prism answers with the spec's static examples (``Prefer: example=…`` picks one per request),
so these tests are about the requests bankhub sends (every one must be valid against the
spec: no ``sl-violations`` about the request) and about reading the spec's own answers.
Flows that need state (an authorisation that ends, a status that moves) run against the peer
bank in test_payments.py.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bankhub.connectors.base import (
    Answer,
    ConnectorContext,
    CreditTransfer,
    MemoryStateStore,
    NeedsDecoupledApproval,
    NeedsRedirect,
    PaymentOrder,
    PaymentStatus,
    ProviderUnavailable,
    end_to_end_id,
)
from bankhub.connectors.xs2a import Xs2aConnector
from bankhub.connectors.xs2a.signing import RequestSigner
from tests.conftest import FakeClock
from tests.connectors.xs2a.conftest import PASSWORD, PSU_ID, PSU_IP, RETURN_URL
from tests.connectors.xs2a.eidas_pki import EidasPki
from tests.support.prism import request_violations

EXAMPLE_DAY = datetime(2017, 10, 30, 9, 0, tzinfo=UTC)
INITIATION_EXAMPLES = {
    "REDIRECT": "Response in case of a redirect with an implicitly created authorisation "
    "sub-resource",
    "EXPLICIT": "Response in case of a redirect where an explicit authorisation start is needed",
    "DECOUPLED": "Response in case of the decoupled approach with explicit start of "
    "authorisation needed (will be done with the update PSU identification function)",
    "EMBEDDED": "Response in case of the embedded approach with explicit start of authorisation",
}
#: the spec lists ``{}`` among the oneOf alternatives of an authorisation body, so Prism flags
#: every non-empty one (a PSU's password, a chosen method, a code) as matching more than one
EMBEDDED_BODY_AMBIGUITY = "should match exactly one schema in oneOf"


class Recorder:
    """Every exchange with Prism, what Prism found wrong with each request, and the example
    asked for each initiation."""

    def __init__(self, example: str | None = None, cancel_code: int | None = None) -> None:
        self.example = example
        self.cancel_code = cancel_code
        self.exchanges: list[tuple[str, str, int, list[dict[str, Any]]]] = []
        self.headers: list[httpx.Headers] = []

    async def on_request(self, request: httpx.Request) -> None:
        path = request.url.path
        if self.example and request.method == "POST" and path.count("/") == 3:
            request.headers["Prefer"] = f"example={self.example}"
        if self.cancel_code and request.method == "DELETE":
            request.headers["Prefer"] = f"code={self.cancel_code}"

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


def _payer(
    prism_url: str, http: httpx.AsyncClient, approach: str, signer: RequestSigner | None = None
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
            },
            http=http,
            state=MemoryStateStore(),
            clock=FakeClock(EXAMPLE_DAY),
            return_url=RETURN_URL,
            options={
                "psu_ip_address": PSU_IP,
                "payment_initiation": True,
                "request_signer": signer,
            },
        )
    )


def _order(count: int = 1, *, batch: bool = False) -> PaymentOrder:
    request_id = str(uuid.uuid4())
    return PaymentOrder(
        request_id=request_id,
        transfers=tuple(
            CreditTransfer(
                end_to_end_id=end_to_end_id(request_id, n),
                creditor_name="Merchant123",
                amount=Decimal("123.50"),
                currency="EUR",
                creditor_iban="DE23100120020123456789",
                creditor_bic="PSSTFRPPLIL",
                remittance="Ref Number Merchant",
            )
            for n in range(count)
        ),
        batch=batch,
        debtor_iban="DE40100100103307118608",
        execution_date=date(2017, 11, 2),
    )


async def test_redirect_single_payment_sends_valid_requests_to_accepted(prism_url: str) -> None:
    recorder = Recorder(INITIATION_EXAMPLES["REDIRECT"])
    async for http in _client(recorder):
        connector = _payer(prism_url, http, "REDIRECT")
        await connector.authenticate({})
        sent = _order()
        first = await connector.initiate_payment(sent)
        assert first.bank_payment_id == "1234-wertiq-983"
        assert first.status == PaymentStatus.PENDING_AUTHORISATION
        assert isinstance(first.sca, NeedsRedirect)
        assert first.sca.url == "https://www.testbank.com/asdfasdfasdf"
        done = await connector.authorise_payment(
            first.bank_payment_id, Answer("redirect", params={})
        )
        assert (done.status, done.sca) == (PaymentStatus.ACCEPTED, None)  # the example's ACCP
        later = await connector.payment_status(first.bank_payment_id)
        assert later.status == PaymentStatus.ACCEPTED
    assert recorder.violations() == []
    assert recorder.calls() == [
        ("POST", "/v1/payments/sepa-credit-transfers", 201),
        ("GET", "/v1/payments/sepa-credit-transfers/1234-wertiq-983/status", 200),
        ("GET", "/v1/payments/sepa-credit-transfers/1234-wertiq-983/status", 200),
    ]
    initiation = recorder.headers[0]
    assert initiation["x-request-id"] == sent.request_id
    assert initiation["psu-ip-address"] == PSU_IP
    assert initiation["tpp-explicit-authorisation-preferred"] == "true"
    assert initiation["tpp-redirect-uri"] == RETURN_URL


@pytest.mark.parametrize("approach", ["EXPLICIT", "DECOUPLED"])
async def test_bulk_payment_with_an_explicit_authorisation_start(
    prism_url: str, approach: str
) -> None:
    recorder = Recorder(INITIATION_EXAMPLES[approach])
    async for http in _client(recorder):
        connector = _payer(prism_url, http, "REDIRECT" if approach == "EXPLICIT" else approach)
        await connector.authenticate({"psu_id": PSU_ID})
        first = await connector.initiate_bulk_payment(_order(3, batch=True))
        assert first.bank_payment_id == "1234-wertiq-983"
        # the spec's start-of-authorisation answer is its decoupled example
        assert isinstance(first.sca, NeedsDecoupledApproval)
        assert first.sca.prompt == "Please use your BankApp for transaction Authorisation."
        waiting = await connector.authorise_payment(first.bank_payment_id, Answer.poll())
        assert isinstance(waiting.sca, NeedsDecoupledApproval)  # Prism's scaStatus: received
    assert recorder.violations() == []
    base = "/v1/bulk-payments/sepa-credit-transfers"
    assert recorder.calls() == [
        ("POST", base, 201),
        ("POST", f"{base}/1234-wertiq-983/authorisations", 201),
        ("GET", f"{base}/1234-wertiq-983/authorisations/123auth456", 200),
    ]
    assert recorder.headers[1]["psu-id"] == PSU_ID


async def test_embedded_password_trips_only_the_specs_own_oneof(prism_url: str) -> None:
    recorder = Recorder(INITIATION_EXAMPLES["EMBEDDED"])
    async for http in _client(recorder):
        connector = _payer(prism_url, http, "EMBEDDED")
        await connector.authenticate({"psu_id": PSU_ID, "password": PASSWORD})
        with pytest.raises(ProviderUnavailable, match="HTTP 4"):
            await connector.initiate_payment(_order())
    base = "/v1/payments/sepa-credit-transfers/1234-wertiq-983"
    assert recorder.calls() == [
        ("POST", "/v1/payments/sepa-credit-transfers", 201),
        ("POST", f"{base}/authorisations", 400),
    ]
    ((method, path, found),) = recorder.violations()
    assert (method, path) == ("POST", f"{base}/authorisations")
    # nothing else: no missing header, no "must have required property 'psuData'"
    assert found == [
        {
            "location": ["request", "body"],
            "severity": "Error",
            "code": "oneOf",
            "message": "Request body must match exactly one schema in oneOf",
        }
    ]
    assert recorder.headers[1]["psu-id"] == PSU_ID


async def test_cancellation_done_and_cancellation_needing_authorisation(prism_url: str) -> None:
    recorder = Recorder(INITIATION_EXAMPLES["REDIRECT"], cancel_code=204)
    async for http in _client(recorder):
        connector = _payer(prism_url, http, "REDIRECT")
        await connector.authenticate({})
        first = await connector.initiate_payment(_order())
        done = await connector.cancel_payment(first.bank_payment_id)
        assert done.status == PaymentStatus.CANCELLED
        recorder.cancel_code = None  # the spec's first answer: 202, authorise the cancellation
        asked = await connector.cancel_payment(first.bank_payment_id)
        # the example's ACTC: past received, so authorised at the bank
        assert asked.status == PaymentStatus.AUTHORISED
        assert asked.sca is not None
        assert (
            asked.reason == "Prism Testbank asks the account holder to authorise the cancellation"
        )
    assert recorder.violations() == []
    base = "/v1/payments/sepa-credit-transfers/1234-wertiq-983"
    assert recorder.calls()[1:] == [
        ("DELETE", base, 204),
        ("DELETE", base, 202),
        ("POST", f"{base}/cancellation-authorisations", 201),
    ]


async def test_a_malformed_initiation_is_reported_by_prism(prism_url: str) -> None:
    """The check the tests above rely on is real: a body without its creditor, sent through
    the connector's own client, is a request violation."""
    recorder = Recorder(INITIATION_EXAMPLES["REDIRECT"])
    async for http in _client(recorder):
        connector = _payer(prism_url, http, "REDIRECT")
        await connector.authenticate({})
        connector._present = True
        with pytest.raises(ProviderUnavailable, match="HTTP 400"):
            await connector.client.call(
                "POST",
                "/v1/payments/sepa-credit-transfers",
                stage="login",
                body={
                    "debtorAccount": {"iban": "DE40100100103307118608"},
                    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
                },
            )
    (flagged,) = recorder.violations()
    assert flagged[0] == "POST"
    assert any("creditorAccount" in v["message"] for v in flagged[2])


async def test_signed_payment_requests_are_valid_requests(
    prism_url: str, eidas_pki: EidasPki
) -> None:
    """eIDAS: with the QSealC, the initiation, the status reads and the cancellation carry
    Digest (of the body sent), Signature over bankhub's X-Request-ID, and the certificate;
    Prism finds nothing wrong with any of them."""
    key = serialization.load_pem_private_key(eidas_pki.qseal.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signer = RequestSigner(eidas_pki.qseal.certificate, key, FakeClock(EXAMPLE_DAY))
    recorder = Recorder(INITIATION_EXAMPLES["REDIRECT"], cancel_code=204)
    bodies: list[bytes] = []

    async def keep_body(request: httpx.Request) -> None:
        bodies.append(request.content)

    async for http in _client(recorder):
        http.event_hooks["request"].append(keep_body)
        connector = _payer(prism_url, http, "REDIRECT", signer)
        await connector.authenticate({})
        sent = _order()
        first = await connector.initiate_payment(sent)
        await connector.authorise_payment(first.bank_payment_id, Answer("redirect", params={}))
        await connector.cancel_payment(first.bank_payment_id)
    assert recorder.violations() == []
    assert [m for m, _, _ in recorder.calls()] == ["POST", "GET", "DELETE"]
    for headers, body in zip(recorder.headers, bodies, strict=True):
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert headers["digest"] == f"SHA-256={digest}"
        assert headers["signature"].startswith('keyId="SN=')
        assert headers["tpp-signature-certificate"]
    initiation = recorder.headers[0]
    assert initiation["x-request-id"] == sent.request_id
    assert 'headers="digest x-request-id date tpp-redirect-uri"' in initiation["signature"]
