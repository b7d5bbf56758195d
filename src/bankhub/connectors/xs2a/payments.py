"""XS2A payment initiation (NextGenPSD2 1.3.x PIS): single and bulk SEPA credit transfers,
their authorisation sub-resource with every SCA approach, status polls and cancellation.

The authorisation dialogue is driven by the link *names* the bank returns (which step it
wants), while requests go to the resource paths the spec fixes
(``/v1/{payment-service}/{payment-product}/{paymentId}/authorisations/{authorisationId}``):
the spec's own examples carry hrefs with the product or a slash missing, and a path built
from the payment id cannot be pointed at another resource by a bank's typo.

Every initiation asks for an explicit start of the authorisation
(``TPP-Explicit-Authorisation-Preferred``): a payment resource only bankhub can authorise
cannot be approved by anyone while bankhub does not know its id, and the spec has the bank
reject one whose SCA is not completed in time. That is what makes an order whose answer was
lost in a crash safe to leave: NextGenPSD2 offers no search by ``X-Request-ID``, so
:meth:`find_payment` answers ``None`` (the platform expires the payment) instead of sending
it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from bankhub.connectors.base import (
    Answer,
    Choice,
    ConnectorContext,
    CreditTransfer,
    InteractionRejected,
    InvalidCredentials,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    NeedsRedirect,
    PaymentAnswer,
    PaymentOrder,
    PaymentStatus,
    ProviderUnavailable,
)
from bankhub.connectors.xs2a.client import Reply, Stage, Xs2aClient, error_codes, error_text
from bankhub.connectors.xs2a.params import ScaApproach, Xs2aParams
from bankhub.connectors.xs2a.parse import code_prompt, flag, items, obj, text

PRODUCT = "sepa-credit-transfers"
SINGLE = "payments"
BULK = "bulk-payments"
#: how many SCA steps the bank may chain without asking the user anything
MAX_AUTOMATIC_STEPS = 6

#: ISO 20022 transaction statuses (NextGenPSD2 ``transactionStatus``) to bankhub's, once the
#: user's authorisation is done; before it, every status that is not final reads as
#: ``pending_authorisation`` (see :func:`payment_status_of`)
TRANSACTION_STATUSES: Mapping[str, PaymentStatus] = {
    # received; the authorisation (or, with several signers, part of it) may still be missing
    "RCVD": PaymentStatus.AUTHORISED,
    "PATC": PaymentStatus.PENDING_AUTHORISATION,
    # authenticated and valid, further checks pending: the user authorised, the bank has not
    # accepted it for execution yet
    "ACTC": PaymentStatus.AUTHORISED,
    "PDNG": PaymentStatus.AUTHORISED,
    # accepted for execution (customer profile, funds checked, settlement in process)
    "ACCP": PaymentStatus.ACCEPTED,
    "ACFC": PaymentStatus.ACCEPTED,
    "ACSP": PaymentStatus.ACCEPTED,
    "ACWC": PaymentStatus.ACCEPTED,
    "ACWP": PaymentStatus.ACCEPTED,
    # a bulk where some transfers were rejected after every authorisation: the rest goes on
    "PART": PaymentStatus.ACCEPTED,
    # settled on the debtor's (ACSC) or the creditor's (ACCC) account
    "ACSC": PaymentStatus.EXECUTED,
    "ACCC": PaymentStatus.EXECUTED,
    "RJCT": PaymentStatus.REJECTED,
    "CANC": PaymentStatus.CANCELLED,
}
#: the codes of a payment still waiting for (all of) its authorisation
AWAITING_SCA = frozenset({"RCVD", "PATC"})
#: the words bankhub adds to a code that tells the partner something beyond the status
_CODE_WORDS = {
    "RJCT": "rejected by the bank",
    "CANC": "cancelled at the bank",
    "PART": "some transfers of the batch were rejected by the bank",
    "ACWC": "accepted with a change by the bank",
    "PATC": "further authorisations are needed at the bank",
}
#: SCA statuses that end the authorisation successfully, or for good
SCA_DONE = frozenset({"finalised", "exempted"})
SCA_FAILED = frozenset({"failed"})


def payment_status_of(code: str | None, *, authorised: bool | None) -> PaymentStatus:
    """bankhub's status for the bank's ``transactionStatus``. ``authorised`` says whether the
    user's SCA is done: while it is not, every status that is not final is
    ``pending_authorisation``; ``None`` (nobody knows: the user left for the bank's page and
    never came back) lets the code tell, as a bank moves a payment past received (``RCVD``,
    ``PATC``) only once it is authorised. An unknown code is the bank's fault, not a status
    to guess."""
    if code is None or code not in TRANSACTION_STATUSES:
        raise ProviderUnavailable(f"The bank sent {code!r} as the payment's transactionStatus")
    status = TRANSACTION_STATUSES[code]
    waiting = not authorised if authorised is not None else code in AWAITING_SCA
    if waiting and not status.final:
        return PaymentStatus.PENDING_AUTHORISATION
    return status


def status_reason(code: str | None, body: Mapping[str, Any]) -> str | None:
    """The bank's reason as the partner reads it: the ISO code where it says more than the
    status, with the bank's ``tppMessages`` (codes and text) and ``psuMessage``."""
    said = [c for c in error_codes(body) if c]
    words = error_text(body) or text(body.get("psuMessage"))
    parts = []
    if code in _CODE_WORDS:
        parts.append(f"{code} {_CODE_WORDS[code]}")
    if said:
        parts.append(", ".join(said))
    if words:
        parts.append(words)
    return ": ".join(parts) if parts else None


def _reference(iban: str | None, account: str | None) -> dict[str, str]:
    if iban:
        return {"iban": iban}
    return {"bban": str(account)}


def transfer_body(transfer: CreditTransfer) -> dict[str, Any]:
    """One transfer as a ``paymentInitiation_json`` without the debtor and dates, which is
    also what a bulk element is."""
    body: dict[str, Any] = {
        "endToEndIdentification": transfer.end_to_end_id,
        "instructedAmount": {"currency": transfer.currency, "amount": str(transfer.amount)},
        "creditorAccount": _reference(transfer.creditor_iban, transfer.creditor_account),
        "creditorName": transfer.creditor_name,
    }
    if transfer.creditor_bic:
        body["creditorAgent"] = transfer.creditor_bic
    if transfer.remittance:
        body["remittanceInformationUnstructured"] = transfer.remittance
    return body


def order_body(order: PaymentOrder, bank: str) -> dict[str, Any]:
    """The initiation body of ``order``: a single transfer, or a bulk of them."""
    if not order.debtor_iban:
        # SEPA credit transfers at XS2A banks name the debtor account (the spec makes it
        # mandatory): the user cannot choose it at the bank
        raise ProviderUnavailable(
            f"{bank} needs the account the payment leaves from; the payment must name it "
            "(account_id)"
        )
    debtor = {"iban": order.debtor_iban}
    if order.batch:
        body: dict[str, Any] = {
            "batchBookingPreferred": False,
            "debtorAccount": debtor,
            "payments": [transfer_body(t) for t in order.transfers],
        }
    else:
        body = {"debtorAccount": debtor, **transfer_body(order.transfers[0])}
    if order.execution_date is not None:
        body["requestedExecutionDate"] = order.execution_date.isoformat()
    return body


def _links(body: Mapping[str, Any]) -> set[str]:
    return {name for name, link in obj(body.get("_links")).items() if text(obj(link).get("href"))}


class Xs2aPayments:
    """The PIS side of :class:`~bankhub.connectors.xs2a.connector.Xs2aConnector`.

    Its state (``state["pis"]``, sealed on the payment by the platform) holds the payment's
    service (single or bulk), the authorisation sub-resource and the step waiting for the
    user; the password and one-time codes stay in memory.
    """

    context: ConnectorContext
    params: Xs2aParams
    client: Xs2aClient
    _present: bool
    _psu_id: str | None
    _password: str | None

    def _psu_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _redirect_headers(self) -> dict[str, str]:
        raise NotImplementedError

    async def _fresh_token(self) -> None:
        raise NotImplementedError

    async def _start_oauth(
        self, state: dict[str, Any], metadata_url: str, scope: str, *, absolute: bool = False
    ) -> None:
        raise NotImplementedError

    async def _exchange_oauth_code(self, state: dict[str, Any], answer: Answer) -> None:
        raise NotImplementedError

    # --- the PaymentsCapability protocol ----------------------------------------------------

    async def initiate_payment(self, order: PaymentOrder) -> PaymentAnswer:
        return await self._initiate(order, SINGLE)

    async def initiate_bulk_payment(self, order: PaymentOrder) -> PaymentAnswer:
        return await self._initiate(order, BULK)

    async def authorise_payment(self, bank_payment_id: str, answer: Answer) -> PaymentAnswer:
        """The user's answer to the step the bank asked for the payment (or its cancellation);
        the next step, if the bank asks one, comes back as the answer's ``sca``."""
        self._present = True
        state = self.context.state.load()
        pis = self._pay_state(state, bank_payment_id)
        try:
            return await self._pay_answer_step(state, pis, answer)
        except (NeedsRedirect, NeedsDecoupledApproval, NeedsChoice, NeedsCode) as step:
            waiting = PaymentStatus(
                self.context.state.load().get("pis", {}).get("held_status")
                or PaymentStatus.PENDING_AUTHORISATION
            )
            return PaymentAnswer(bank_payment_id, waiting, None, sca=step)

    async def _pay_answer_step(
        self, state: dict[str, Any], pis: dict[str, Any], answer: Answer
    ) -> PaymentAnswer:
        pending = obj(pis.get("pending"))
        step = pending.get("step")
        if step == "redirect":
            if answer.kind != "redirect":
                raise InteractionRejected(f"Finish the approval at {self.params.name} first")
            return await self._pay_after_sca(state, pis, refused=answer.params.get("sca") == "nok")
        if step == "oauth":
            await self._exchange_oauth_code(state, answer)
            return await self._pay_after_sca(self.context.state.load(), pis, refused=False)
        if step == "decoupled":
            return await self._pay_after_sca(state, pis, refused=False, polling=True)
        if step == "choice":
            if answer.kind != "choice" or answer.value not in pending.get("options", []):
                raise InteractionRejected("Choose one of the offered confirmation methods")
            reply = await self._pay_send(pis, {"authenticationMethodId": answer.value}, "answer")
            return await self._pay_advance(state, pis, reply)
        if step == "code":
            code = answer.value.strip()
            if answer.kind != "code" or not code:
                raise InteractionRejected("Enter the code to confirm")
            reply = await self._pay_send(pis, {"scaAuthenticationData": code}, "answer")
            return await self._pay_advance(state, pis, reply)
        raise InteractionRejected("There is no payment step waiting for an answer")

    async def payment_status(self, bank_payment_id: str) -> PaymentAnswer:
        """``GET …/status``. Where the user left a step unanswered (the connect page closed
        while they were at the bank), the authorisation's own ``scaStatus`` says whether they
        finished it there; without an authorisation id, the status code tells."""
        state = self.context.state.load()
        pis = self._pay_state(state, bank_payment_id)
        await self._fresh_token()
        pending = obj(pis.get("pending"))
        authorised: bool | None = True
        if pending.get("step") and pis.get("cancelling"):
            if pending.get("authorisation_id"):
                # a cancellation the user left half-done (an approval in the bank's app given
                # later): reading its scaStatus is what a decoupled bank settles on
                sca = await self.client.call("GET", self._pay_authorisation(pis), stage="read")
                if text(sca.body.get("scaStatus")) in SCA_DONE | SCA_FAILED:
                    pis["pending"] = {k: v for k, v in pending.items() if k != "step"}
                    self._pay_save(state, pis)
        elif pending.get("step"):
            authorised = None
            if pending.get("authorisation_id"):
                sca = await self.client.call("GET", self._pay_authorisation(pis), stage="read")
                authorised = text(sca.body.get("scaStatus")) in SCA_DONE
        reply = await self.client.call("GET", f"{self._pay_path(pis)}/status", stage="read")
        return self._pay_answer(pis, reply.body, authorised=authorised)

    async def find_payment(self, request_id: str) -> PaymentAnswer | None:
        """NextGenPSD2 has no search by ``X-Request-ID``; a payment resource the bank may have
        made of a lost answer waits for an authorisation only bankhub could start, and the
        bank rejects it when its time runs out (module docstring)."""
        state = self.context.state.load()
        pis = obj(state.get("pis"))
        if pis.get("request_id") == request_id and text(pis.get("payment_id")):
            return await self.payment_status(str(pis["payment_id"]))
        return None

    async def cancel_payment(self, bank_payment_id: str) -> PaymentAnswer:
        """``DELETE`` the payment resource. 204 (or ``CANC``) is done; ``CANCELLATION_INVALID``
        is the bank's status; a 202 naming a start of authorisation means the bank wants the
        account holder to authorise the cancellation (``needs_authorisation``): it is started
        where the bank needs nothing of the user for that, and its step is the answer's
        ``sca``."""
        state = self.context.state.load()
        pis = self._pay_state(state, bank_payment_id)
        await self._fresh_token()
        reply = await self.client.call(
            "DELETE", self._pay_path(pis), stage="read", answers=frozenset({"CANCELLATION_INVALID"})
        )
        if reply.status >= 400:
            # the bank no longer allows it (executed, or past its cut-off): its status says why
            return await self._pay_status(pis, authorised=True)
        if reply.status == 204:
            return PaymentAnswer(bank_payment_id, PaymentStatus.CANCELLED, None)
        code = text(reply.body.get("transactionStatus"))
        # as a status read: a step left unanswered leaves it to the code
        authorised = None if obj(pis.get("pending")).get("step") else True
        answer = self._pay_answer(pis, reply.body, authorised=authorised)
        starts = {n for n in _links(reply.body) if n.startswith("startAuthorisation")}
        if code == "CANC" or not starts:
            return answer
        pis["cancelling"] = True
        pis["held_status"] = answer.status.value
        pis["pending"] = {}
        # how the bank asked to start it, for the connect page to start it with the user
        pis["cancel_start"] = sorted(starts)
        self._pay_save(state, pis)
        if not self._present:
            # without the user (an API call): the bank wants the user's IP address, ID or
            # password, and a redirect back to the user's own connect session
            return PaymentAnswer(
                bank_payment_id, answer.status, self._cancel_asked(), needs_authorisation=True
            )
        return await self._pay_start_cancellation(state, pis, reply)

    async def authorise_cancellation(self, bank_payment_id: str) -> PaymentAnswer:
        """The account holder, logged in on the connect page, authorises the cancellation the
        bank asked for (:meth:`cancel_payment`): a fresh cancellation-authorisation
        sub-resource, started as the bank's ``startAuthorisation…`` link said."""
        self._present = True
        state = self.context.state.load()
        pis = self._pay_state(state, bank_payment_id)
        starts = [str(n) for n in pis.get("cancel_start") or []]
        if not pis.get("cancelling") or not starts:
            raise InteractionRejected(
                f"{self.params.name} asks for no authorisation to cancel this payment"
            )
        await self._fresh_token()
        pis["pending"] = {}
        self._pay_save(state, pis)
        href = self._pay_sub_resource(pis)
        asked = Reply(202, {"_links": {name: {"href": href} for name in starts}}, httpx.Headers())
        return await self._pay_start_cancellation(state, pis, asked)

    def _cancel_asked(self) -> str:
        return f"{self.params.name} asks the account holder to authorise the cancellation"

    async def _pay_start_cancellation(
        self, state: dict[str, Any], pis: dict[str, Any], reply: Reply
    ) -> PaymentAnswer:
        held = PaymentStatus(pis.get("held_status") or PaymentStatus.AUTHORISED)
        try:
            await self._pay_advance(state, pis, reply)
        except (NeedsRedirect, NeedsDecoupledApproval, NeedsChoice, NeedsCode) as step:
            return PaymentAnswer(
                str(pis["payment_id"]),
                held,
                self._cancel_asked(),
                sca=step,
                needs_authorisation=True,
            )
        return await self._pay_status(pis, authorised=True)

    # --- initiation and the authorisation dialogue ------------------------------------------

    async def _initiate(self, order: PaymentOrder, service: str) -> PaymentAnswer:
        self._present = True
        params = self.params
        if params.preferred_sca_approach is ScaApproach.EMBEDDED and not (
            self._psu_id and self._password
        ):
            raise InvalidCredentials(f"{params.name} needs your user ID and password")
        body = order_body(order, params.name)
        await self._fresh_token()
        redirect = params.preferred_sca_approach in (ScaApproach.REDIRECT, ScaApproach.OAUTH)
        reply = await self.client.call(
            "POST",
            f"/v1/{service}/{PRODUCT}",
            stage="login",
            headers={
                # bankhub's id of the order: a retry of this very request is the same order
                "X-Request-ID": order.request_id,
                **self._psu_headers(),
                **self._redirect_headers(),
                "TPP-Redirect-Preferred": flag(redirect),
                "TPP-Decoupled-Preferred": flag(
                    params.preferred_sca_approach is ScaApproach.DECOUPLED
                ),
                "TPP-Explicit-Authorisation-Preferred": "true",
            },
            body=body,
        )
        payment_id = text(reply.body.get("paymentId"))
        if not payment_id:
            raise ProviderUnavailable(f"{params.name} accepted the payment without a paymentId")
        state = self.context.state.load()
        pis: dict[str, Any] = {
            "payment_id": payment_id,
            "service": service,
            "request_id": order.request_id,
            "pending": {},
        }
        state["pis"] = pis
        self.context.state.save(state)
        code = text(reply.body.get("transactionStatus"))
        status = payment_status_of(code, authorised=False)
        if status.final:
            return self._pay_answer(pis, reply.body, authorised=False)
        try:
            return await self._pay_advance(state, pis, reply)
        except (NeedsRedirect, NeedsDecoupledApproval, NeedsChoice, NeedsCode) as step:
            # the bank's payment id goes back with the step: the platform records it first
            return PaymentAnswer(
                payment_id,
                PaymentStatus.PENDING_AUTHORISATION,
                status_reason(code, reply.body),
                sca=step,
            )

    async def _pay_advance(
        self, state: dict[str, Any], pis: dict[str, Any], reply: Reply, depth: int = 0
    ) -> PaymentAnswer:
        """Take the step the bank's answer calls for; raises the interaction the user must
        answer, or returns the payment's status once the authorisation is over."""
        if depth > MAX_AUTOMATIC_STEPS:
            raise ProviderUnavailable(f"{self.params.name} kept asking for more SCA steps")
        body, links = reply.body, _links(reply.body)
        pending = obj(pis.get("pending"))
        if text(body.get("authorisationId")):
            pending["authorisation_id"] = text(body.get("authorisationId"))
        announced = reply.headers.get("ASPSP-SCA-Approach", "").upper()
        if announced in ScaApproach.__members__:
            pending["approach"] = announced
        approach = pending.get("approach") or self.params.preferred_sca_approach.value
        # what the user confirms, in the bank's steps' words
        what = "cancellation of the payment" if pis.get("cancelling") else "payment"
        pis["pending"] = pending
        self._pay_save(state, pis)
        sca_status = text(body.get("scaStatus"))
        if sca_status in SCA_FAILED:
            return await self._pay_after_sca(state, pis, refused=True)
        if sca_status in SCA_DONE:
            return await self._pay_after_sca(state, pis, refused=False)
        if "scaRedirect" in links and (
            "scaOAuth" not in links or self.params.preferred_sca_approach is not ScaApproach.OAUTH
        ):
            self._pay_wait(state, pis, step="redirect")
            href = obj(obj(body.get("_links")).get("scaRedirect")).get("href")
            raise NeedsRedirect(self.client.absolute(str(href)), f"Continue at {self.params.name}")
        if "scaOAuth" in links:
            href = str(obj(obj(body.get("_links")).get("scaOAuth")).get("href"))
            self._pay_wait(state, pis, step="oauth")
            await self._start_oauth(state, href, f"PIS:{pis['payment_id']}", absolute=True)
        methods = [
            m for m in items(body.get("scaMethods")) if text(m.get("authenticationMethodId"))
        ]
        chooses = links & {
            "selectAuthenticationMethod",
            "startAuthorisationWithAuthenticationMethodSelection",
        }
        if methods and chooses and not body.get("chosenScaMethod"):
            options = [
                Choice(
                    str(m["authenticationMethodId"]),
                    text(m.get("name")) or text(m.get("authenticationType")) or "Method",
                )
                for m in methods
            ]
            if len(options) == 1:
                choice = {"authenticationMethodId": options[0].id}
                nxt = await self._pay_send(pis, choice)
                return await self._pay_advance(state, pis, nxt, depth + 1)
            self._pay_wait(state, pis, step="choice", options=[o.id for o in options])
            raise NeedsChoice(f"How do you want to confirm the {what}?", options)
        if "startAuthorisationWithPsuAuthentication" in links or (
            "updatePsuAuthentication" in links
        ):
            password, self._password = self._password, None
            if not password:
                raise InvalidCredentials(f"{self.params.name} needs your password again")
            data = {"psuData": {"password": password}}
            nxt = await self._pay_send(pis, data)
            return await self._pay_advance(state, pis, nxt, depth + 1)
        for name in (
            "startAuthorisationWithPsuIdentification",
            "startAuthorisation",
            "updatePsuIdentification",
        ):
            if name in links:
                nxt = await self._pay_send(pis, {})
                return await self._pay_advance(state, pis, nxt, depth + 1)
        if (
            "authoriseTransaction" in links
            or "startAuthorisationWithTransactionAuthorisation" in links
            or (
                pending.get("authorisation_id")
                and (
                    body.get("chosenScaMethod")
                    or (approach == ScaApproach.EMBEDDED and sca_status == "scaMethodSelected")
                )
            )
        ):
            self._pay_wait(state, pis, step="code")
            raise NeedsCode(code_prompt(body, self.params.name, f" to confirm the {what}"))
        if pending.get("authorisation_id") and (approach == ScaApproach.DECOUPLED or sca_status):
            self._pay_wait(state, pis, step="decoupled")
            raise NeedsDecoupledApproval(
                text(body.get("psuMessage"))
                or f"Approve the {what} in your {self.params.name} app",
                poll_after_seconds=self.params.decoupled_poll_seconds,
            )
        if not pending.get("authorisation_id") and not links & {"scaStatus", "self", "status"}:
            raise ProviderUnavailable(f"{self.params.name} offered no way to authorise the payment")
        # nothing asked of the user (an exemption): the status says the rest
        return await self._pay_status(pis, authorised=True)

    async def _pay_after_sca(
        self, state: dict[str, Any], pis: dict[str, Any], *, refused: bool, polling: bool = False
    ) -> PaymentAnswer:
        """The user came back (or polled): the authorisation's ``scaStatus`` decides, then the
        payment's own status."""
        pending = obj(pis.get("pending"))
        sca_status: str | None = None
        if pending.get("authorisation_id"):
            reply = await self.client.call("GET", self._pay_authorisation(pis), stage="login")
            sca_status = text(reply.body.get("scaStatus"))
        if sca_status in SCA_FAILED or (refused and sca_status not in SCA_DONE):
            pis["pending"] = {k: v for k, v in pending.items() if k != "step"}
            self._pay_save(state, pis)
            what = "cancellation" if pis.get("cancelling") else "payment"
            raise InteractionRejected(f"The {what} was not authorised at {self.params.name}")
        if polling and sca_status not in SCA_DONE:
            raise NeedsDecoupledApproval(
                f"Still waiting for your approval in the {self.params.name} app",
                poll_after_seconds=self.params.decoupled_poll_seconds,
            )
        pis["pending"] = {k: v for k, v in pending.items() if k != "step"}
        self._pay_save(state, pis)
        return await self._pay_status(pis, authorised=True)

    async def _pay_status(self, pis: Mapping[str, Any], *, authorised: bool) -> PaymentAnswer:
        reply = await self.client.call("GET", f"{self._pay_path(pis)}/status", stage="login")
        return self._pay_answer(pis, reply.body, authorised=authorised)

    def _pay_answer(
        self, pis: Mapping[str, Any], body: Mapping[str, Any], *, authorised: bool | None
    ) -> PaymentAnswer:
        code = text(body.get("transactionStatus"))
        status = payment_status_of(code, authorised=authorised)
        reason = status_reason(code, body)
        return PaymentAnswer(str(pis["payment_id"]), status, reason)

    # --- requests ---------------------------------------------------------------------------

    def _pay_path(self, pis: Mapping[str, Any]) -> str:
        return f"/v1/{pis['service']}/{PRODUCT}/{quote(str(pis['payment_id']), safe='')}"

    def _pay_sub_resource(self, pis: Mapping[str, Any]) -> str:
        kind = "cancellation-authorisations" if pis.get("cancelling") else "authorisations"
        return f"{self._pay_path(pis)}/{kind}"

    def _pay_authorisation(self, pis: Mapping[str, Any]) -> str:
        authorisation_id = str(obj(pis.get("pending")).get("authorisation_id"))
        return f"{self._pay_sub_resource(pis)}/{quote(authorisation_id, safe='')}"

    async def _pay_send(
        self, pis: Mapping[str, Any], body: Mapping[str, Any], stage: Stage = "login"
    ) -> Reply:
        """``POST`` the authorisation (or cancellation-authorisation) sub-resource while there
        is none, else ``PUT`` the open one: the ``startAuthorisationWith…`` and ``update…``
        links differ only in that, and the body says what is answered."""
        if obj(pis.get("pending")).get("authorisation_id"):
            return await self.client.call(
                "PUT",
                self._pay_authorisation(pis),
                stage=stage,
                headers=self._psu_headers(),
                body=body,
            )
        return await self.client.call(
            "POST",
            self._pay_sub_resource(pis),
            stage=stage,
            headers={**self._psu_headers(), **self._redirect_headers()},
            body=body,
        )

    def _pay_state(self, state: Mapping[str, Any], bank_payment_id: str) -> dict[str, Any]:
        pis = obj(state.get("pis"))
        if pis.get("payment_id") != bank_payment_id or pis.get("service") not in (SINGLE, BULK):
            raise ProviderUnavailable(
                f"bankhub holds no record of payment {bank_payment_id} at {self.params.name}"
            )
        return dict(pis)

    def _pay_save(self, state: dict[str, Any], pis: dict[str, Any]) -> None:
        state["pis"] = pis
        self.context.state.save(state)

    def _pay_wait(self, state: dict[str, Any], pis: dict[str, Any], **step: Any) -> None:
        pending = obj(pis.get("pending"))
        for key in ("step", "options"):
            pending.pop(key, None)
        pending.update(step)
        pis["pending"] = pending
        self._pay_save(state, pis)
