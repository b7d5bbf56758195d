"""XS2A pieces without a server: parameters, link resolution, error mapping, amounts."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import (
    AccountLocked,
    ConsentExpired,
    InteractionRejected,
    InvalidCredentials,
    ProviderUnavailable,
    RateLimited,
)
from bankhub.connectors.xs2a import InstitutionConfigError, ScaApproach, Xs2aParams
from bankhub.connectors.xs2a.client import Stage, Xs2aClient, failure_for
from bankhub.connectors.xs2a.parse import decimal

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _client(base_url: str) -> Xs2aClient:
    params = Xs2aParams.from_institution({"base_url": base_url})
    return Xs2aClient(httpx.AsyncClient(), params, lambda: NOW, lambda: None)


@pytest.mark.parametrize(
    ("href", "url"),
    [
        ("/psd2/v1/consents/1/status", "https://api.bank.example/psd2/v1/consents/1/status"),
        ("/v1/accounts?pageIndex=2", "https://api.bank.example/psd2/v1/accounts?pageIndex=2"),
        ("v1/accounts/a/transactions", "https://api.bank.example/psd2/v1/accounts/a/transactions"),
        ("https://api.bank.example/psd2/v1/x", "https://api.bank.example/psd2/v1/x"),
        ("/other/thing", "https://api.bank.example/psd2/other/thing"),
    ],
)
def test_links_resolve_against_the_api_root(href: str, url: str) -> None:
    assert _client("https://api.bank.example/psd2/").resolve(href) == url


def test_links_to_another_host_are_not_followed() -> None:
    with pytest.raises(ProviderUnavailable, match="another host"):
        _client("https://api.bank.example/psd2").resolve("https://evil.example/v1/accounts")


def _fail(
    status: int, *codes: str, stage: Stage = "read", headers: dict[str, str] | None = None
) -> Exception:
    body = {"tppMessages": [{"category": "ERROR", "code": c, "text": "t"} for c in codes]}
    return failure_for(status, body, httpx.Headers(headers or {}), NOW, stage)


def test_error_codes_map_to_failures() -> None:
    assert isinstance(_fail(401, "CONSENT_EXPIRED"), ConsentExpired)
    assert isinstance(_fail(401, "CONSENT_INVALID"), ConsentExpired)
    assert isinstance(_fail(403, "CONSENT_UNKNOWN"), ConsentExpired)
    assert isinstance(_fail(401, "PSU_CREDENTIALS_INVALID", stage="login"), InvalidCredentials)
    assert isinstance(_fail(401, "PSU_CREDENTIALS_INVALID", stage="answer"), InteractionRejected)
    assert isinstance(_fail(400, "SCA_INVALID", stage="answer"), InteractionRejected)
    assert isinstance(_fail(403, "SERVICE_BLOCKED"), AccountLocked)
    limited = _fail(429, headers={"Retry-After": "120"})
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 120.0
    assert isinstance(_fail(400, "ACCESS_EXCEEDED"), RateLimited)
    assert isinstance(_fail(502), ProviderUnavailable)
    other = _fail(400, "FORMAT_ERROR")
    assert isinstance(other, ProviderUnavailable)
    assert "FORMAT_ERROR" in str(other)
    problem = failure_for(
        401, {"type": "x", "code": "CONSENT_EXPIRED"}, httpx.Headers(), NOW, "read"
    )
    assert isinstance(problem, ConsentExpired)


def test_amounts_are_parsed_from_text_and_garbage_is_named() -> None:
    assert decimal("-1.50", "x") == Decimal("-1.50")
    assert decimal("5877.78", "x") == Decimal("5877.78")
    for bad in ("1,50", "1e3", 12.5, None, "NaN"):
        with pytest.raises(ProviderUnavailable, match="not a number"):
            decimal(bad, "transaction 7")


def test_institution_params_are_checked_with_clear_messages() -> None:
    params = Xs2aParams.from_institution(
        {
            "base_url": "https://api.bank.example/psd2",
            "sca_approaches": ["redirect", "decoupled"],
            "preferred_sca_approach": "DECOUPLED",
        }
    )
    assert params.preferred_sca_approach is ScaApproach.DECOUPLED
    bad: list[tuple[dict[str, Any], str]] = [
        ({"slug": "b"}, "base_url"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"base_url": "https://x", "sca_approaches": ["PIGEON"]}, "REDIRECT, OAUTH, DECOUPLED"),
        ({"base_url": "https://x", "sca_approaches": ["OAUTH"]}, "oauth_client_id"),
        ({"base_url": "https://x", "preferred_sca_approach": "EMBEDDED"}, "one of sca_approaches"),
        ({"base_url": "https://x", "consent_days": 400}, "consent_days"),
        ({"base_url": "https://x", "frequency_per_day": "4"}, "frequency_per_day"),
        ({"base_url": "https://x", "extra_headers": {"apikey": 1}}, "extra_headers"),
        ({"base_url": "https://x", "booking_status": "pending"}, "booking_status"),
    ]
    for institution, problem in bad:
        with pytest.raises(InstitutionConfigError, match=problem):
            Xs2aParams.from_institution(institution)


async def test_a_tls_alert_after_the_handshake_is_the_bank_unreachable() -> None:
    """test_a_tls_alert_after_the_handshake_is_the_bank_unreachable — eIDAS: under TLS 1.3 a
    bank that refuses the QWAC says so in an alert read after the handshake, which httpx passes
    on as a bare ``ssl.SSLError``; the connector reports it as ``ProviderUnavailable`` naming
    the QWAC, not as a crash."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] certificate required")

    params = Xs2aParams.from_institution({"base_url": "https://bank.example/psd2"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        client = Xs2aClient(http, params, lambda: NOW, lambda: None)
        with pytest.raises(ProviderUnavailable, match=r"ended the TLS connection.*QWAC"):
            await client.call("GET", "/v1/accounts", stage="read")


def test_eidas_refusals_name_the_operators_certificates() -> None:
    """test_eidas_refusals_name_the_operators_certificates — eIDAS: the Berlin Group's
    certificate and signature codes are reported as the operator's fault, with the command
    that checks them."""
    for code in ("ROLE_INVALID", "CERTIFICATE_EXPIRED", "SIGNATURE_INVALID", "SIGNATURE_MISSING"):
        body = {"tppMessages": [{"category": "ERROR", "code": code}]}
        failure = failure_for(401, body, httpx.Headers(), NOW, "login")
        assert isinstance(failure, ProviderUnavailable)
        assert "eIDAS certificate or request signature" in failure.message
        assert "bankhub eidas check" in failure.message
