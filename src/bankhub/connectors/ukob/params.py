"""A UK Open Banking bank's parameters, read from its catalogue entry (``services.json`` params).

What the operator registered with the bank (``client_id``, the ``signing_key_id`` of the signing
certificate in the Open Banking directory) and what the bank publishes (its API base, its
OpenID Provider well-known URL, its ``x-fapi-financial-id``) are all the connector knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bankhub.connectors.xs2a.params import InstitutionConfigError

#: what bankhub reads: the accounts with their numbers, balances and detailed transactions
DEFAULT_PERMISSIONS = (
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadTransactionsBasic",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
    "ReadTransactionsDetail",
)
#: permissions a bank may be asked for on top (the spec's OBExternalPermissions1Code)
KNOWN_PERMISSIONS = frozenset(
    {
        *DEFAULT_PERMISSIONS,
        "ReadAccountsBasic",
        "ReadBeneficiariesBasic",
        "ReadBeneficiariesDetail",
        "ReadDirectDebits",
        "ReadOffers",
        "ReadPAN",
        "ReadParty",
        "ReadPartyPSU",
        "ReadProducts",
        "ReadScheduledPaymentsBasic",
        "ReadScheduledPaymentsDetail",
        "ReadStandingOrdersBasic",
        "ReadStandingOrdersDetail",
        "ReadStatementsBasic",
        "ReadStatementsDetail",
    }
)
RESPONSE_TYPES = ("code id_token", "code")


@dataclass(frozen=True, slots=True)
class UkobParams:
    """Everything bank-specific; the connector has no other source of bank knowledge."""

    base_url: str
    well_known_url: str
    client_id: str
    signing_key_id: str
    name: str = "the bank"
    financial_id: str | None = None
    #: the redirect URL registered with the bank; by default bankhub's return page
    redirect_url: str | None = None
    #: ``code id_token`` (hybrid) or ``code``; by default the first the bank's metadata offers
    response_type: str | None = None
    permissions: tuple[str, ...] = DEFAULT_PERMISSIONS
    consent_days: int = 90
    history_days: int = 730
    timeout_seconds: float = 30.0

    @classmethod
    def from_institution(cls, institution: Mapping[str, Any]) -> UkobParams:
        label = str(institution.get("slug") or institution.get("name") or "ukob institution")

        def fail(problem: str) -> InstitutionConfigError:
            return InstitutionConfigError(f"{label}: {problem}")

        def url(key: str, example: str) -> str:
            value = str(institution.get(key) or "").rstrip("/")
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise fail(f"params.{key} must be an absolute URL, e.g. {example}")
            return value

        def word(key: str, required: bool = True) -> str | None:
            value = institution.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value.strip():
                raise fail(f"params.{key} must be a non-empty string")
            return value.strip()

        def number(key: str, default: float, low: float, high: float) -> float:
            value = institution.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail(f"params.{key} must be a number")
            if not low <= value <= high:
                raise fail(f"params.{key} must be between {low:g} and {high:g}")
            return float(value)

        permissions = institution.get("permissions", list(DEFAULT_PERMISSIONS))
        if (
            not isinstance(permissions, list)
            or not permissions
            or not all(p in KNOWN_PERMISSIONS for p in permissions)
        ):
            raise fail(
                "params.permissions must list Open Banking permission codes, e.g. "
                "ReadAccountsDetail"
            )
        for needed in ("ReadBalances", "ReadTransactionsDetail"):
            if needed not in permissions:
                raise fail(f"params.permissions must include {needed}")
        response_type = word("response_type", required=False)
        if response_type is not None and response_type not in RESPONSE_TYPES:
            raise fail("params.response_type must be 'code id_token' or 'code'")
        redirect_url = institution.get("redirect_url")
        return cls(
            base_url=url("base_url", "https://ob.bank.co.uk/open-banking/v3.1/aisp"),
            well_known_url=url(
                "well_known_url", "https://auth.bank.co.uk/.well-known/openid-configuration"
            ),
            client_id=str(word("client_id")),
            signing_key_id=str(word("signing_key_id")),
            name=str(institution.get("name") or "the bank"),
            financial_id=word("financial_id", required=False),
            redirect_url=url("redirect_url", "https://hub.example/v2/connect/return")
            if redirect_url is not None
            else None,
            response_type=response_type,
            permissions=tuple(dict.fromkeys(str(p) for p in permissions)),
            consent_days=int(number("consent_days", 90, 1, 3650)),
            history_days=int(number("history_days", 730, 1, 3650)),
            timeout_seconds=number("timeout_seconds", 30.0, 0.01, 300.0),
        )
