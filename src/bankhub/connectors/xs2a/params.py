"""An XS2A institution's parameters, read from its catalogue entry (``services.json`` params)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit


class ScaApproach(StrEnum):
    REDIRECT = "REDIRECT"
    DECOUPLED = "DECOUPLED"
    EMBEDDED = "EMBEDDED"
    #: OAuth2 authorization code flow at the bank's authorization server (see ``OAuthVariant``)
    OAUTH = "OAUTH"


class OAuthVariant(StrEnum):
    #: the PSU authorises bankhub at the bank first; the consent is created with the token
    PRE_STEP = "pre-step"
    #: the consent is created first; its ``_links.scaOAuth`` names the authorization server
    INTEGRATED = "integrated"


class InstitutionConfigError(ValueError):
    """A catalogue entry for an XS2A bank is missing a parameter or has a wrong one."""


@dataclass(frozen=True, slots=True)
class Xs2aParams:
    """Everything bank-specific; the connector has no other source of bank knowledge."""

    base_url: str
    name: str = "the bank"
    sca_approaches: tuple[ScaApproach, ...] = (ScaApproach.REDIRECT,)
    preferred_sca_approach: ScaApproach = ScaApproach.REDIRECT
    psu_id_required: bool = False
    psu_id_type: str | None = None
    consent_days: int = 90
    frequency_per_day: int = 4
    all_psd2: bool = False
    with_balance: bool = False
    booking_status: str = "both"
    history_days: int = 730
    timeout_seconds: float = 30.0
    decoupled_poll_seconds: float = 3.0
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    oauth_variant: OAuthVariant = OAuthVariant.INTEGRATED
    #: the bank's RFC 8414 authorization server metadata document
    oauth_metadata_url: str | None = None
    #: the client id the bank registered for the operator (with the QWAC as client authentication)
    oauth_client_id: str | None = None
    #: the scope asked for by the pre-step (the integrated variant asks for ``AIS:<consentId>``)
    oauth_scope: str = "AIS"
    #: how long before the access token expires it is renewed with the refresh token
    oauth_refresh_margin_seconds: float = 300.0

    @classmethod
    def from_institution(cls, institution: Mapping[str, Any]) -> Xs2aParams:
        label = str(institution.get("slug") or institution.get("name") or "xs2a institution")

        def fail(problem: str) -> InstitutionConfigError:
            return InstitutionConfigError(f"{label}: {problem}")

        base_url = str(institution.get("base_url") or "").rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise fail(
                "params.base_url must be the bank's XS2A API root, e.g. https://api.bank/psd2"
            )

        client_id = str(institution.get("oauth_client_id") or "") or None
        try:
            approaches = tuple(
                ScaApproach(str(a).upper()) for a in institution.get("sca_approaches", ["REDIRECT"])
            )
            # a bank offering OAuth among others is reached another way until the operator
            # has registered a client id with it
            usable = [a for a in approaches if a is not ScaApproach.OAUTH or client_id]
            preferred = ScaApproach(
                str(
                    institution.get("preferred_sca_approach", (usable or approaches or ("",))[0])
                ).upper()
            )
        except ValueError:
            raise fail("SCA approaches must be REDIRECT, OAUTH, DECOUPLED or EMBEDDED") from None
        if not approaches or preferred not in approaches:
            raise fail("preferred_sca_approach must be one of sca_approaches")

        extra = institution.get("extra_headers", {})
        if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise fail("extra_headers must map header names to string values")

        def number(key: str, default: float, low: float, high: float) -> float:
            value = institution.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail(f"{key} must be a number")
            if not low <= value <= high:
                raise fail(f"{key} must be between {low:g} and {high:g}")
            return float(value)

        booking_status = str(institution.get("booking_status", "both"))
        if booking_status not in ("booked", "both"):
            raise fail("booking_status must be 'booked' or 'both'")
        psu_id_type = institution.get("psu_id_type")
        try:
            variant = OAuthVariant(str(institution.get("oauth_variant", "integrated")).lower())
        except ValueError:
            raise fail("oauth_variant must be 'pre-step' or 'integrated'") from None
        idp_urls = institution.get("idp_urls")
        # the registries' IdP URL is the authorization server of the OAuth pre-step
        fallback = idp_urls[0] if isinstance(idp_urls, list) and idp_urls else None
        metadata_url = str(institution.get("oauth_metadata_url") or fallback or "") or None
        if metadata_url is not None:
            meta = urlsplit(metadata_url)
            if meta.scheme not in ("http", "https") or not meta.netloc:
                raise fail("oauth_metadata_url must be an absolute http(s) URL")
        if preferred is ScaApproach.OAUTH:
            if client_id is None:
                raise fail("oauth_client_id is needed for the OAUTH SCA approach")
            if variant is OAuthVariant.PRE_STEP and metadata_url is None:
                raise fail("oauth_metadata_url is needed for the OAuth pre-step")
        return cls(
            base_url=base_url,
            name=str(institution.get("name") or "the bank"),
            sca_approaches=approaches,
            preferred_sca_approach=preferred,
            psu_id_required=bool(institution.get("psu_id_required", False)),
            psu_id_type=str(psu_id_type) if psu_id_type else None,
            consent_days=int(number("consent_days", 90, 1, 180)),
            frequency_per_day=int(number("frequency_per_day", 4, 1, 96)),
            all_psd2=bool(institution.get("all_psd2", False)),
            with_balance=bool(institution.get("with_balance", False)),
            booking_status=booking_status,
            history_days=int(number("history_days", 730, 1, 3650)),
            timeout_seconds=number("timeout_seconds", 30.0, 0.01, 300.0),
            decoupled_poll_seconds=number("decoupled_poll_seconds", 3.0, 0.0, 60.0),
            extra_headers=dict(extra),
            oauth_variant=variant,
            oauth_metadata_url=metadata_url,
            oauth_client_id=client_id,
            oauth_scope=str(institution.get("oauth_scope") or "AIS"),
            oauth_refresh_margin_seconds=number("oauth_refresh_margin_seconds", 300.0, 0.0, 3600.0),
        )
