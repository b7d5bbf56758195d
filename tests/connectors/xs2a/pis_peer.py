"""The peer bank's payment initiation (NextGenPSD2 PIS), for flows Prism's static answers
cannot drive: an authorisation that ends, a status that moves to a final one, a cancellation
the bank wants authorised.

Every request body the peer receives and every JSON answer it gives is checked against the
schemas of the Berlin Group spec in the shared corpus (``spec_problems``): a peer that drifted
from the spec fails the test that used it.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

PREFIX = "/psd2"
PSD2_SPEC = (
    Path(__file__).resolve().parents[3]
    / ".."
    / "shared"
    / "corpus"
    / "openapi"
    / "psd2-api_v1.3.12-2022-07-06.yaml"
)
FINAL = frozenset({"ACSC", "ACCC", "RJCT", "CANC"})
#: the link that starts an authorisation (explicitly, as bankhub asks) per approach
START_LINKS = {
    "REDIRECT": "startAuthorisation",
    "DECOUPLED": "startAuthorisationWithPsuIdentification",
    "EMBEDDED": "startAuthorisationWithPsuAuthentication",
}


@functools.cache
def _components() -> dict[str, Any]:
    spec = yaml.safe_load(PSD2_SPEC.read_text(encoding="utf-8", errors="replace"))
    return {"components": spec["components"]}


@functools.cache
def _validator(schema: str) -> Any:
    root = {**_components(), "$ref": f"#/components/schemas/{schema}"}
    return jsonschema_rs.Draft4Validator(root)


def spec_problems(schema: str, body: Any) -> list[str]:
    """What is wrong with ``body`` as the spec's ``schema`` (empty when it conforms)."""
    return [
        f"{error.message} at {'/'.join(str(p) for p in error.instance_path)}"
        for error in _validator(schema).iter_errors(body)
    ]


@dataclass
class PeerAuthorisation:
    id: str
    sca_status: str
    method: str | None = None
    polls: int = 0
    #: where the bank's page sends the PSU back (the start's ``TPP-Redirect-URI``, else the
    #: payment's): a cancellation is authorised from another connect session than the payment
    redirect_uri: str | None = None
    nok_uri: str | None = None


@dataclass
class PeerPayment:
    id: str
    service: str
    approach: str
    body: dict[str, Any]
    request_id: str
    redirect_uri: str | None
    nok_uri: str | None
    status: str = "RCVD"
    #: the statuses the payment moves through, one per status read, once authorised
    ahead: list[str] = field(default_factory=list)
    authorisations: dict[str, PeerAuthorisation] = field(default_factory=dict)
    cancellations: dict[str, PeerAuthorisation] = field(default_factory=dict)
    status_reads: int = 0


class PaymentsPeer:
    """Mixed into :class:`~tests.connectors.xs2a.peer.PeerBank`: its ``payments`` and the
    knobs below steer the PIS side; ``spec_problems_seen`` gathers any drift from the spec."""

    origin: str
    approaches: tuple[str, ...]
    psu_id: str
    password: str
    code: str
    methods: tuple[str, ...]
    decoupled_polls: int
    decoupled_outcome: str

    def _pis_init(self) -> None:
        self.payments: dict[str, PeerPayment] = {}
        #: the statuses an authorised payment moves through, one per status read
        self.payment_statuses: tuple[str, ...] = ("ACTC", "ACSP", "ACSC")
        #: the bank wants the PSU to authorise a cancellation (a 202 with a start link)
        self.cancel_needs_authorisation = False
        self.spec_problems_seen: list[str] = []

    def _spec(self, schema: str, body: Any, what: str) -> None:
        self.spec_problems_seen.extend(f"{what}: {p}" for p in spec_problems(schema, body))

    def _answer(
        self, status: int, headers: dict[str, str], body: Any, schema: str | None
    ) -> tuple[int, dict[str, str], Any]:
        if schema is not None:
            self._spec(schema, body, f"answer {schema}")
        return status, headers, body

    def pis_route(
        self, method: str, parts: list[str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        service = parts[0]
        if len(parts) < 2 or parts[1] != "sepa-credit-transfers":
            return 404, {}, _error("PRODUCT_UNKNOWN")
        if len(parts) == 2 and method == "POST":
            return self._initiate(service, headers, body)
        payment = self.payments.get(parts[2]) if len(parts) > 2 else None
        if payment is None or payment.service != service:
            return 403, {}, _error("RESOURCE_UNKNOWN")
        rest = parts[3:]
        if not rest and method == "DELETE":
            return self._cancel(payment)
        if rest == ["status"] and method == "GET":
            return self._status(payment)
        if rest and rest[0] in ("authorisations", "cancellation-authorisations"):
            cancelling = rest[0] == "cancellation-authorisations"
            if len(rest) == 1 and method == "POST":
                return self._start(payment, headers, body or {}, cancelling=cancelling)
            store = payment.cancellations if cancelling else payment.authorisations
            auth = store.get(rest[1]) if len(rest) == 2 else None
            if auth is None:
                return 403, {}, _error("RESOURCE_UNKNOWN")
            if method == "GET":
                return self._sca_status(payment, auth, cancelling=cancelling)
            if method == "PUT":
                return self._update(payment, auth, body or {}, cancelling=cancelling)
        return 405, {}, _error("SERVICE_INVALID")

    def pis_bank_page(
        self, payment_id: str, query: dict[str, str]
    ) -> tuple[int, dict[str, str], Any] | None:
        """``/bank/pay/{id}``: the bank's own page where the PSU authorises the payment (or
        its cancellation); ``decision=approve`` approves."""
        payment = self.payments.get(payment_id)
        if payment is None:
            return None
        if "decision" not in query:
            from tests.connectors.xs2a.peer import _decision_page

            return 200, {}, _decision_page(f"/bank/pay/{payment_id}", {})
        approved = query.get("decision") == "approve"
        for store, cancelling in ((payment.cancellations, True), (payment.authorisations, False)):
            for auth in store.values():
                if auth.sca_status == "received":
                    auth.sca_status = "finalised" if approved else "failed"
                    self._settle(payment, approved, cancelling=cancelling)
                    back = auth.redirect_uri or payment.redirect_uri
                    target = back if approved else auth.nok_uri or payment.nok_uri
                    return 302, {"Location": target or back or "/"}, None
        return 409, {}, _error("STATUS_INVALID")

    # --- the resource -----------------------------------------------------------------------

    def _initiate(
        self, service: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        if not headers.get("psu-ip-address"):
            return 400, {}, _error("FORMAT_ERROR", "PSU-IP-Address is missing")
        schema = (
            "bulkPaymentInitiation_json" if service == "bulk-payments" else "paymentInitiation_json"
        )
        problems = spec_problems(schema, body)
        if problems:
            self.spec_problems_seen.extend(f"request {schema}: {p}" for p in problems)
            return 400, {}, _error("FORMAT_ERROR", "; ".join(problems)[:500])
        if "OAUTH" in self.approaches and headers.get("tpp-redirect-preferred") == "true":
            approach = "OAUTH"
        elif headers.get("tpp-decoupled-preferred") == "true" and "DECOUPLED" in self.approaches:
            approach = "DECOUPLED"
        elif headers.get("tpp-redirect-preferred") == "true" and "REDIRECT" in self.approaches:
            approach = "REDIRECT"
        elif "EMBEDDED" in self.approaches:
            approach = "EMBEDDED"
        else:
            approach = self.approaches[0]
        if approach == "REDIRECT" and not headers.get("tpp-redirect-uri"):
            return 400, {}, _error("FORMAT_ERROR", "TPP-Redirect-URI is missing")
        payment = PeerPayment(
            id=uuid.uuid4().hex[:12],
            service=service,
            approach=approach,
            body=body,
            request_id=headers.get("x-request-id", ""),
            redirect_uri=headers.get("tpp-redirect-uri"),
            nok_uri=headers.get("tpp-nok-redirect-uri"),
        )
        self.payments[payment.id] = payment
        here = f"{PREFIX}/v1/{service}/sepa-credit-transfers/{payment.id}"
        links: dict[str, Any] = {"self": {"href": here}, "status": {"href": f"{here}/status"}}
        if approach == "OAUTH":
            # the spec's OAuth2 example: the authorisation is created with the payment, and
            # the PSU authorises scope PIS:<paymentId> at the authorization server
            auth = PeerAuthorisation(uuid.uuid4().hex[:8], "received")
            payment.authorisations[auth.id] = auth
            links["scaOAuth"] = {"href": f"{self.origin}/.well-known/oauth-authorization-server"}
            links["scaStatus"] = {"href": f"{here}/authorisations/{auth.id}"}
        else:
            links[START_LINKS[approach]] = {"href": f"{here}/authorisations"}
        answer = {"transactionStatus": "RCVD", "paymentId": payment.id, "_links": links}
        return self._answer(
            201, {"ASPSP-SCA-Approach": approach}, answer, "paymentInitiationRequestResponse-201"
        )

    def pis_oauth_decision(self, payment_id: str, approved: bool) -> None:
        """The PSU approved (or refused) scope ``PIS:<paymentId>`` at the authorization server."""
        payment = self.payments.get(payment_id)
        if payment is None:
            return
        for auth in payment.authorisations.values():
            if auth.sca_status == "received":
                auth.sca_status = "finalised" if approved else "failed"
                self._settle(payment, approved, cancelling=False)

    def _status(self, payment: PeerPayment) -> tuple[int, dict[str, str], Any]:
        payment.status_reads += 1
        if payment.ahead and payment.status not in FINAL:
            payment.status = payment.ahead.pop(0)
        answer: dict[str, Any] = {"transactionStatus": payment.status}
        if payment.status == "RJCT":
            answer["tppMessages"] = [
                {"category": "ERROR", "code": "PAYMENT_FAILED", "text": "AM04 insufficient funds"}
            ]
        return self._answer(200, {}, answer, "paymentInitiationStatusResponse-200_json")

    def _cancel(self, payment: PeerPayment) -> tuple[int, dict[str, str], Any]:
        if payment.status in FINAL:
            return 400, {}, _error("CANCELLATION_INVALID", f"the payment is {payment.status}")
        if not self.cancel_needs_authorisation:
            payment.status, payment.ahead = "CANC", []
            return 204, {}, None
        here = f"{PREFIX}/v1/{payment.service}/sepa-credit-transfers/{payment.id}"
        answer = {
            "transactionStatus": payment.status,
            "_links": {
                "self": {"href": here},
                "status": {"href": f"{here}/status"},
                START_LINKS[payment.approach]: {"href": f"{here}/cancellation-authorisations"},
            },
        }
        return self._answer(202, {}, answer, "paymentInitiationCancelResponse-202")

    # --- authorisations ---------------------------------------------------------------------

    def _start(
        self,
        payment: PeerPayment,
        headers: dict[str, str],
        body: dict[str, Any],
        *,
        cancelling: bool,
    ) -> tuple[int, dict[str, str], Any]:
        auth = PeerAuthorisation(uuid.uuid4().hex[:8], "received")
        kind = "cancellation-authorisations" if cancelling else "authorisations"
        base = f"{PREFIX}/v1/{payment.service}/sepa-credit-transfers/{payment.id}"
        href = f"{base}/{kind}/{auth.id}"
        store = payment.cancellations if cancelling else payment.authorisations
        answer: dict[str, Any]
        if payment.approach == "REDIRECT":
            auth.redirect_uri = headers.get("tpp-redirect-uri")
            auth.nok_uri = headers.get("tpp-nok-redirect-uri")
            store[auth.id] = auth
            answer = {
                "scaStatus": "received",
                "authorisationId": auth.id,
                "_links": {
                    "scaRedirect": {"href": f"{self.origin}/bank/pay/{payment.id}"},
                    "scaStatus": {"href": href},
                },
            }
            return self._answer(
                201, {"ASPSP-SCA-Approach": "REDIRECT"}, answer, "startScaprocessResponse"
            )
        if headers.get("psu-id") != self.psu_id:
            return 401, {}, _error("PSU_CREDENTIALS_INVALID", "unknown PSU-ID")
        if payment.approach == "DECOUPLED":
            store[auth.id] = auth
            auth.sca_status = "started"
            answer = {
                "scaStatus": "started",
                "authorisationId": auth.id,
                "psuMessage": "Please approve the payment in your BankApp.",
                "_links": {"scaStatus": {"href": href}},
            }
            return self._answer(
                201, {"ASPSP-SCA-Approach": "DECOUPLED"}, answer, "startScaprocessResponse"
            )
        if (body.get("psuData") or {}).get("password") != self.password:
            return 401, {}, _error("PSU_CREDENTIALS_INVALID", "wrong password")
        store[auth.id] = auth
        if len(self.methods) > 1:
            auth.sca_status = "psuAuthenticated"
            answer = {
                "scaStatus": "psuAuthenticated",
                "authorisationId": auth.id,
                "scaMethods": [_method(m) for m in self.methods],
                "_links": {
                    "selectAuthenticationMethod": {"href": href},
                    "scaStatus": {"href": href},
                },
            }
        else:
            auth.method, auth.sca_status = self.methods[0], "scaMethodSelected"
            answer = _challenge(auth, href)
        return self._answer(
            201, {"ASPSP-SCA-Approach": "EMBEDDED"}, answer, "startScaprocessResponse"
        )

    def _sca_status(
        self, payment: PeerPayment, auth: PeerAuthorisation, *, cancelling: bool
    ) -> tuple[int, dict[str, str], Any]:
        if payment.approach == "DECOUPLED" and auth.sca_status == "started":
            auth.polls += 1
            if auth.polls >= self.decoupled_polls:
                approved = self.decoupled_outcome == "approve"
                auth.sca_status = "finalised" if approved else "failed"
                self._settle(payment, approved, cancelling=cancelling)
        return self._answer(200, {}, {"scaStatus": auth.sca_status}, "scaStatusResponse")

    def _update(
        self,
        payment: PeerPayment,
        auth: PeerAuthorisation,
        body: dict[str, Any],
        *,
        cancelling: bool,
    ) -> tuple[int, dict[str, str], Any]:
        base = f"{PREFIX}/v1/{payment.service}/sepa-credit-transfers/{payment.id}"
        kind = "cancellation-authorisations" if cancelling else "authorisations"
        href = f"{base}/{kind}/{auth.id}"
        if "authenticationMethodId" in body:
            if body["authenticationMethodId"] not in self.methods:
                return 400, {}, _error("SCA_METHOD_UNKNOWN")
            auth.method, auth.sca_status = body["authenticationMethodId"], "scaMethodSelected"
            return self._answer(
                200, {}, _challenge(auth, href), "selectPsuAuthenticationMethodResponse"
            )
        if "scaAuthenticationData" in body:
            if auth.sca_status != "scaMethodSelected":
                return 403, {}, _error("SERVICE_INVALID", "no method selected")
            approved = body["scaAuthenticationData"] == self.code
            auth.sca_status = "finalised" if approved else "failed"
            self._settle(payment, approved, cancelling=cancelling)
            answer = {"scaStatus": auth.sca_status, "_links": {"scaStatus": {"href": href}}}
            return self._answer(200, {}, answer, "scaStatusResponse")
        return 400, {}, _error("FORMAT_ERROR")

    def _settle(self, payment: PeerPayment, approved: bool, *, cancelling: bool) -> None:
        if cancelling:
            if approved:
                payment.status, payment.ahead = "CANC", []
            return
        if approved:
            payment.ahead = list(self.payment_statuses)
        else:
            payment.status, payment.ahead = "RJCT", []


def _method(name: str) -> dict[str, str]:
    kind = "SMS_OTP" if name == "sms" else "PUSH_OTP"
    return {"authenticationType": kind, "authenticationMethodId": name, "name": f"{kind} ({name})"}


def _challenge(auth: PeerAuthorisation, href: str) -> dict[str, Any]:
    return {
        "scaStatus": "scaMethodSelected",
        "authorisationId": auth.id,
        "chosenScaMethod": _method(auth.method or "sms"),
        "challengeData": {"otpMaxLength": 6, "otpFormat": "integer"},
        "_links": {"authoriseTransaction": {"href": href}, "scaStatus": {"href": href}},
    }


def _error(code: str, text: str = "") -> dict[str, Any]:
    message = {"category": "ERROR", "code": code}
    if text:
        message["text"] = text
    return {"tppMessages": [message]}
