"""XS2A payment initiation against the peer bank: every SCA approach to the end, single and
bulk, the status moving to a final one, refusals and cancellation (with and without the
bank's cancellation authorisation). The peer checks what it receives and what it answers
against the spec's schemas (``pis_peer``)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import (
    ConnectorContext,
    CreditTransfer,
    InteractionRejected,
    MemoryStateStore,
    NeedsCode,
    NeedsRedirect,
    PaymentAnswer,
    PaymentOrder,
    PaymentStatus,
    ProviderUnavailable,
    end_to_end_id,
)
from bankhub.connectors.xs2a import Xs2aConnector
from tests.conftest import FakeClock
from tests.connectors.xs2a.conftest import PASSWORD, PSU_ID, PSU_IP, RETURN_URL, institution
from tests.connectors.xs2a.conftest import responder as consent_responder
from tests.connectors.xs2a.peer import OAUTH_CLIENT_ID, WELL_KNOWN, PeerBank

DEBTOR = "DE89370400440532013000"


def order(count: int = 1, *, batch: bool = False) -> PaymentOrder:
    request_id = str(uuid.uuid4())
    transfers = tuple(
        CreditTransfer(
            end_to_end_id=end_to_end_id(request_id, n),
            creditor_name=f"Creditor {n}",
            amount=Decimal("12.50") + n,
            currency="EUR",
            creditor_iban="FR1420041010050500013M02606",
            creditor_bic="PSSTFRPPLIL" if n == 0 else None,
            remittance=f"Invoice {n}",
        )
        for n in range(count)
    )
    return PaymentOrder(
        request_id=request_id,
        transfers=transfers,
        batch=batch,
        debtor_iban=DEBTOR,
        execution_date=date(2026, 11, 23),
    )


def payer(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock, approach: str, **extra: Any
) -> Xs2aConnector:
    return Xs2aConnector(
        ConnectorContext(
            institution=institution(bank, approach, **extra),
            http=http,
            state=MemoryStateStore(),
            clock=clock,
            return_url=RETURN_URL,
            options={"psu_ip_address": PSU_IP, "payment_initiation": True},
        )
    )


async def authorise(
    connector: Xs2aConnector,
    bank: PeerBank,
    http: httpx.AsyncClient,
    answer: PaymentAnswer,
    *,
    approve: bool = True,
) -> tuple[PaymentAnswer, list[str]]:
    """Answer every step the bank asks, as the user on the connect page would."""
    respond = consent_responder(bank, http, approve=approve)
    steps: list[str] = []
    while answer.sca is not None:
        steps.append(type(answer.sca).__name__)
        assert len(steps) < 10
        answer = await connector.authorise_payment(
            answer.bank_payment_id, await respond(answer.sca)
        )
    return answer, steps


async def poll_to_final(connector: Xs2aConnector, bank_payment_id: str) -> list[PaymentStatus]:
    seen = []
    for _ in range(10):
        answer = await connector.payment_status(bank_payment_id)
        seen.append(answer.status)
        if answer.status.final:
            return seen
    raise AssertionError(f"never final: {seen}")


@pytest.mark.parametrize(
    ("approach", "steps"),
    [
        ("REDIRECT", ["NeedsRedirect"]),
        ("DECOUPLED", ["NeedsDecoupledApproval", "NeedsDecoupledApproval"]),
        ("EMBEDDED", ["NeedsChoice", "NeedsCode"]),
    ],
)
@pytest.mark.parametrize("batch", [False, True], ids=["single", "bulk"])
async def test_each_approach_authorises_and_polls_to_executed(
    bank: PeerBank,
    http: httpx.AsyncClient,
    clock: FakeClock,
    approach: str,
    steps: list[str],
    batch: bool,
) -> None:
    connector = payer(bank, http, clock, approach)
    await connector.authenticate({"psu_id": PSU_ID, "password": PASSWORD})
    assert not bank.consents  # a payment's login asks no account consent
    sent = order(3 if batch else 1, batch=batch)
    first = await (
        connector.initiate_bulk_payment(sent) if batch else connector.initiate_payment(sent)
    )
    assert first.status == PaymentStatus.PENDING_AUTHORISATION
    (held,) = bank.payments.values()
    assert first.bank_payment_id == held.id
    assert held.service == ("bulk-payments" if batch else "payments")
    assert held.request_id == sent.request_id  # bankhub's id of the order
    entries = held.body["payments"] if batch else [held.body]
    assert [e["endToEndIdentification"] for e in entries] == [
        t.end_to_end_id for t in sent.transfers
    ]
    assert entries[0]["instructedAmount"] == {"currency": "EUR", "amount": "12.50"}
    assert held.body["debtorAccount"] == {"iban": DEBTOR}
    assert held.body["requestedExecutionDate"] == "2026-11-23"

    done, taken = await authorise(connector, bank, http, first)
    assert taken == steps
    assert done.status == PaymentStatus.AUTHORISED  # ACTC: authorised, not accepted yet
    assert await poll_to_final(connector, held.id) == [
        PaymentStatus.ACCEPTED,
        PaymentStatus.EXECUTED,
    ]
    assert bank.spec_problems_seen == []


async def test_a_payment_refused_at_the_bank_page_is_rejected_by_the_user(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    connector = payer(bank, http, clock, "REDIRECT")
    await connector.authenticate({})
    first = await connector.initiate_payment(order())
    assert isinstance(first.sca, NeedsRedirect)
    with pytest.raises(InteractionRejected, match="not authorised"):
        await authorise(connector, bank, http, first, approve=False)
    answer = await connector.payment_status(first.bank_payment_id)
    assert answer.status == PaymentStatus.REJECTED
    assert answer.reason == "RJCT rejected by the bank: PAYMENT_FAILED: AM04 insufficient funds"


async def test_a_wrong_code_fails_the_embedded_authorisation(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    bank.methods = ("sms",)
    connector = payer(bank, http, clock, "EMBEDDED")
    await connector.authenticate({"psu_id": PSU_ID, "password": PASSWORD})
    first = await connector.initiate_payment(order())
    assert isinstance(first.sca, NeedsCode)  # one method: chosen without asking
    with pytest.raises(InteractionRejected, match="not authorised"):
        await authorise(connector, bank, http, first, approve=False)


async def test_the_state_carries_polls_and_cancellation_to_another_process(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The sweep and the API build a fresh connector from the state sealed on the payment."""
    connector = payer(bank, http, clock, "REDIRECT")
    await connector.authenticate({})
    first = await connector.initiate_payment(order())
    await authorise(connector, bank, http, first)
    later = Xs2aConnector(
        ConnectorContext(
            institution=institution(bank, "REDIRECT"),
            http=http,
            state=MemoryStateStore(connector.context.state.load()),
            clock=clock,
        )
    )
    assert (await later.payment_status(first.bank_payment_id)).status == PaymentStatus.ACCEPTED
    # no user: no PSU-IP-Address on the status read
    assert "psu-ip-address" not in bank.requests[-1][2]
    cancelled = await later.cancel_payment(first.bank_payment_id)
    assert cancelled.status == PaymentStatus.CANCELLED
    assert not cancelled.needs_authorisation
    assert bank.payments[first.bank_payment_id].status == "CANC"
    # final at the bank: it says so, and the answer is its status, not a failure
    refused = await later.cancel_payment(first.bank_payment_id)
    assert refused.status == PaymentStatus.CANCELLED
    bank.payments[first.bank_payment_id].status = "ACSC"
    assert (await later.cancel_payment(first.bank_payment_id)).status == PaymentStatus.EXECUTED


async def test_a_cancellation_the_bank_wants_authorised_is_started_and_answered(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    bank.cancel_needs_authorisation = True
    bank.payment_statuses = ("ACTC", "ACSP")
    connector = payer(bank, http, clock, "REDIRECT")
    await connector.authenticate({})
    first = await connector.initiate_payment(order())
    await authorise(connector, bank, http, first)
    answer = await connector.cancel_payment(first.bank_payment_id)
    assert answer.status == PaymentStatus.AUTHORISED
    assert isinstance(answer.sca, NeedsRedirect)
    assert answer.reason == "Peer Bank asks the account holder to authorise the cancellation"
    assert answer.needs_authorisation
    held = bank.payments[first.bank_payment_id]
    assert list(held.cancellations)
    assert held.status != "CANC"
    done, _ = await authorise(connector, bank, http, answer)
    assert done.status == PaymentStatus.CANCELLED
    assert bank.spec_problems_seen == []


async def test_a_cancellation_asked_without_the_user_is_authorised_by_them_later(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """An API call (no user) only learns that the bank wants the cancellation authorised; the
    user, logged in on another connect session, starts it with their address and their own
    session's return URL, which the bank's page sends them back to."""
    bank.cancel_needs_authorisation = True
    bank.payment_statuses = ("ACTC", "ACSP")
    connector = payer(bank, http, clock, "REDIRECT")
    await connector.authenticate({})
    first = await connector.initiate_payment(order())
    await authorise(connector, bank, http, first)
    sealed = connector.context.state.load()
    api = Xs2aConnector(
        ConnectorContext(
            institution=institution(bank, "REDIRECT"),
            http=http,
            state=MemoryStateStore(sealed),
            clock=clock,
        )
    )
    asked = await api.cancel_payment(first.bank_payment_id)
    assert asked.needs_authorisation
    assert asked.sca is None
    held = bank.payments[first.bank_payment_id]
    assert not held.cancellations  # nothing started without the user
    elsewhere = f"{RETURN_URL}-cancel"
    user = Xs2aConnector(
        ConnectorContext(
            institution=institution(bank, "REDIRECT"),
            http=http,
            state=MemoryStateStore(api.context.state.load()),
            clock=clock,
            return_url=elsewhere,
            options={"psu_ip_address": PSU_IP, "payment_initiation": True},
        )
    )
    await user.authenticate({})
    started = await user.authorise_cancellation(first.bank_payment_id)
    assert isinstance(started.sca, NeedsRedirect)
    assert started.status in (PaymentStatus.AUTHORISED, PaymentStatus.ACCEPTED)
    method, target, headers = bank.requests[-1]
    assert (method, target.rsplit("/", 1)[-1]) == ("POST", "cancellation-authorisations")
    assert headers["psu-ip-address"] == PSU_IP
    assert headers["tpp-redirect-uri"] == elsewhere
    (authorisation,) = held.cancellations.values()
    assert authorisation.redirect_uri == elsewhere
    done, _ = await authorise(user, bank, http, started)
    assert done.status == PaymentStatus.CANCELLED
    assert held.status == "CANC"
    assert bank.spec_problems_seen == []


async def test_no_debtor_account_is_refused_before_the_bank_is_asked(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    connector = payer(bank, http, clock, "REDIRECT")
    await connector.authenticate({})
    sent = order()
    anonymous = PaymentOrder(sent.request_id, sent.transfers, debtor_iban=None)
    with pytest.raises(ProviderUnavailable, match="needs the account the payment leaves from"):
        await connector.initiate_payment(anonymous)
    assert not bank.payments


async def test_the_peer_refuses_a_body_the_spec_does_not_allow(
    bank: PeerBank, http: httpx.AsyncClient
) -> None:
    """The peer's own check is real: a transfer without its creditor is refused."""
    response = await http.post(
        f"{bank.base_url}/v1/payments/sepa-credit-transfers",
        headers={"X-Request-ID": str(uuid.uuid4()), "PSU-IP-Address": PSU_IP},
        json={
            "debtorAccount": {"iban": DEBTOR},
            "instructedAmount": {"currency": "EUR", "amount": "1"},
        },
    )
    assert response.status_code == 400
    assert "creditorAccount" in response.text


async def test_a_cancellation_needing_the_users_password_is_left_to_the_user(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Without the user (the partner's DELETE), an embedded bank's cancellation authorisation
    cannot start: the answer says the bank needs it, and nothing is sent for it."""
    bank.cancel_needs_authorisation = True
    bank.methods = ("sms",)
    connector = payer(bank, http, clock, "EMBEDDED")
    await connector.authenticate({"psu_id": PSU_ID, "password": PASSWORD})
    first = await connector.initiate_payment(order())
    await authorise(connector, bank, http, first)
    later = Xs2aConnector(
        ConnectorContext(
            institution=institution(bank, "EMBEDDED"),
            http=http,
            state=MemoryStateStore(connector.context.state.load()),
            clock=clock,
        )
    )
    answer = await later.cancel_payment(first.bank_payment_id)
    assert (answer.status, answer.sca, answer.needs_authorisation) == (
        PaymentStatus.AUTHORISED,
        None,
        True,
    )
    assert not bank.payments[first.bank_payment_id].cancellations


@pytest.mark.parametrize(
    "bank", [{"approaches": ("OAUTH",), "oauth_variant": "integrated"}], indirect=True
)
async def test_oauth_integrated_authorises_the_payment_scope(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The bank's answer names its authorization server; the PSU grants ``PIS:<paymentId>``
    there (PKCE), bankhub exchanges the code and reads the authorisation's status."""
    bank.now = lambda: clock().timestamp()
    connector = payer(
        bank,
        http,
        clock,
        "OAUTH",
        oauth_client_id=OAUTH_CLIENT_ID,
        sca_approaches=["OAUTH"],
        psu_id_required=False,
    )
    await connector.authenticate({})
    first = await connector.initiate_payment(order())
    assert isinstance(first.sca, NeedsRedirect)
    assert f"scope=PIS%3A{first.bank_payment_id}" in first.sca.url
    assert "code_challenge_method=S256" in first.sca.url
    done, steps = await authorise(connector, bank, http, first)
    assert (steps, done.status) == (["NeedsRedirect"], PaymentStatus.AUTHORISED)
    assert bank.oauth_records.token_requests[-1] == "authorization_code"
    # every later call carries the token
    await connector.payment_status(first.bank_payment_id)
    assert bank.requests[-1][2]["authorization"].startswith("Bearer ")
    assert bank.spec_problems_seen == []


@pytest.mark.parametrize(
    "bank", [{"approaches": ("OAUTH",), "oauth_variant": "pre-step"}], indirect=True
)
async def test_oauth_pre_step_asks_the_pis_scope_before_the_payment(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    bank.now = lambda: clock().timestamp()
    connector = payer(
        bank,
        http,
        clock,
        "OAUTH",
        oauth_client_id=OAUTH_CLIENT_ID,
        sca_approaches=["OAUTH"],
        psu_id_required=False,
        oauth_variant="pre-step",
        oauth_metadata_url=f"{bank.origin}{WELL_KNOWN}",
    )
    with pytest.raises(NeedsRedirect) as pre_step:
        await connector.authenticate({})
    assert "scope=PIS&" in pre_step.value.url
    respond = consent_responder(bank, http)
    await connector.resume(await respond(pre_step.value))
    assert not bank.consents  # the token, and no account consent
    first = await connector.initiate_payment(order())
    (initiation,) = [
        r
        for r in bank.requests
        if r[0] == "POST" and r[1].endswith("/payments/sepa-credit-transfers")
    ]
    assert initiation[2]["authorization"].startswith("Bearer ")
    assert first.bank_payment_id in bank.payments
    # the payment itself is still authorised by the PSU (PSD2: SCA linked to the payment)
    assert isinstance(first.sca, NeedsRedirect)


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "left"])
async def test_a_user_who_never_came_back_from_the_bank_page(
    bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock, approve: bool
) -> None:
    """The connect page closed while the user was at the bank: the sweep reads the
    authorisation's scaStatus, so a payment approved there is authorised, not abandoned."""
    connector = payer(bank, http, clock, "REDIRECT")
    await connector.authenticate({})
    first = await connector.initiate_payment(order())
    assert isinstance(first.sca, NeedsRedirect)
    if approve:
        page = await http.get(httpx.URL(first.sca.url).copy_add_param("decision", "approve"))
        assert page.status_code == 302
    later = Xs2aConnector(
        ConnectorContext(
            institution=institution(bank, "REDIRECT"),
            http=http,
            state=MemoryStateStore(connector.context.state.load()),
            clock=clock,
        )
    )
    answer = await later.payment_status(first.bank_payment_id)
    expected = PaymentStatus.AUTHORISED if approve else PaymentStatus.PENDING_AUTHORISATION
    assert answer.status == expected
    assert bank.requests[-2][1].endswith(
        f"/authorisations/{next(iter(bank.payments[first.bank_payment_id].authorisations))}"
    )
