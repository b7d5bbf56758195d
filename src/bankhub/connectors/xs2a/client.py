"""The HTTP side of XS2A: protocol headers, link resolution and mapping errors to failures."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from bankhub.clock import Clock
from bankhub.connectors.base import (
    AccountLocked,
    ConnectorFailure,
    ConsentExpired,
    InteractionRejected,
    InvalidCredentials,
    ProviderUnavailable,
    RateLimited,
)
from bankhub.connectors.xs2a.params import Xs2aParams
from bankhub.connectors.xs2a.signing import RequestSigner

#: what a call is for; the same error code means different things during login and reading
Stage = Literal["login", "answer", "read"]

CONSENT_GONE = frozenset(
    {
        "CONSENT_EXPIRED",
        "CONSENT_INVALID",
        "CONSENT_UNKNOWN",
        # the OAuth approach's access token: bankhub renews it before it expires, so the bank
        # refusing it means the PSU's authorisation is gone
        "TOKEN_EXPIRED",
        "TOKEN_INVALID",
        "TOKEN_UNKNOWN",
    }
)
CREDENTIALS_WRONG = frozenset({"PSU_CREDENTIALS_INVALID", "CORPORATE_ID_INVALID"})
ANSWER_WRONG = frozenset({"PSU_CREDENTIALS_INVALID", "SCA_INVALID", "SCA_METHOD_UNKNOWN"})
#: the bank refuses bankhub's eIDAS certificates or request signature: the operator's to fix
EIDAS_REFUSED = frozenset(
    {
        "CERTIFICATE_INVALID",
        "CERTIFICATE_EXPIRED",
        "CERTIFICATE_BLOCKED",
        "CERTIFICATE_REVOKED",
        "CERTIFICATE_MISSING",
        "ROLE_INVALID",
        "SIGNATURE_INVALID",
        "SIGNATURE_MISSING",
    }
)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers


def error_codes(body: Mapping[str, Any]) -> list[str]:
    """Codes from NextGenPSD2 ``tppMessages`` and RFC 7807 ``code``/``additionalErrors``."""
    codes: list[str] = []
    for key in ("tppMessages", "additionalErrors"):
        for message in body.get(key) or []:
            if isinstance(message, Mapping) and isinstance(message.get("code"), str):
                codes.append(message["code"])
    if isinstance(body.get("code"), str):
        codes.append(body["code"])
    return codes


def error_text(body: Mapping[str, Any]) -> str:
    texts = [
        str(m["text"])
        for m in body.get("tppMessages") or []
        if isinstance(m, Mapping) and m.get("text")
    ]
    for key in ("detail", "title"):
        if isinstance(body.get(key), str):
            texts.append(body[key])
    return "; ".join(texts)


def retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    """``Retry-After`` as seconds, from either form (delta-seconds or an HTTP date)."""
    raw = headers.get("retry-after", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def failure_for(
    status: int, body: Mapping[str, Any], headers: httpx.Headers, now: datetime, stage: Stage
) -> ConnectorFailure:
    """The typed failure for an error answer, from its tppMessages codes first, then its status."""
    codes = set(error_codes(body))
    detail = error_text(body)
    said = f" ({', '.join(sorted(codes))}{': ' + detail if detail else ''})" if codes else ""
    wait = retry_after(headers, now)
    if status == 429 or "ACCESS_EXCEEDED" in codes:
        return RateLimited(f"The bank refuses more requests for now{said}", retry_after=wait)
    if codes & CONSENT_GONE:
        return ConsentExpired(f"The consent is no longer valid at the bank{said}")
    if stage == "answer" and codes & ANSWER_WRONG:
        return InteractionRejected(f"The bank did not accept the answer{said}")
    if codes & CREDENTIALS_WRONG:
        return InvalidCredentials(f"The bank rejected the user ID or password{said}")
    if "SERVICE_BLOCKED" in codes:
        return AccountLocked(f"The bank has blocked access for this user{said}")
    if codes & EIDAS_REFUSED:
        return ProviderUnavailable(
            f"The bank refused bankhub's eIDAS certificate or request signature{said}; the "
            "operator must check the QWAC and QSealC settings (bankhub eidas check)"
        )
    if status >= 500:
        return ProviderUnavailable(f"The bank answered HTTP {status}{said}", retry_after=wait)
    return ProviderUnavailable(f"The bank refused the request with HTTP {status}{said}")


class Xs2aClient:
    """Sends XS2A requests with the protocol headers and turns errors into failures."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        params: Xs2aParams,
        clock: Clock,
        psu_ip_address: Callable[[], str | None],
        signer: RequestSigner | None = None,
        problem: str | None = None,
        bearer: Callable[[], str | None] | None = None,
        psu_language: Callable[[], str | None] | None = None,
    ) -> None:
        self.http = http
        #: signs every request with the QSealC, where the operator configured one
        self.signer = signer
        #: why the eIDAS certificates cannot be used; nothing is sent then
        self.problem = problem
        self.params = params
        self.clock = clock
        self.psu_ip_address = psu_ip_address
        #: the user's language while they are present (``PSU-Accept-Language``)
        self.psu_language = psu_language
        #: the OAuth2 access token of the OAuth SCA approach, sent on every call while held
        self.bearer = bearer
        parts = urlsplit(params.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._root_path = parts.path.rstrip("/")

    def absolute(self, href: str) -> str:
        """The bank's SCA page; an absolute link is passed on as is (it may be another host)."""
        return href if "://" in href else self.resolve(href)

    def resolve(self, href: str) -> str:
        """An absolute URL for a path or an ASPSP ``href`` (absolute, host-relative or relative).

        Host-relative links carry the bank's deployment prefix (``/psd2/v1/...``); everything
        from ``/v1/`` on is resolved against ``base_url``, which already holds that prefix.
        """
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:
            if f"{parts.scheme}://{parts.netloc}" != self._origin:
                raise ProviderUnavailable(
                    f"The bank linked to another host ({parts.netloc}); not following it"
                )
            return href
        if not href.startswith("/"):
            return f"{self.params.base_url}/{href}"
        marker = href.find("/v1/")
        if marker >= 0:
            return f"{self.params.base_url}{href[marker:]}"
        if self._root_path and not href.startswith(self._root_path + "/"):
            return f"{self.params.base_url}{href}"
        return f"{self._origin}{href}"

    def headers(self, consent_id: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(self.params.extra_headers)
        headers["Accept"] = "application/json"
        headers["X-Request-ID"] = str(uuid.uuid4())
        if consent_id:
            headers["Consent-ID"] = consent_id
        ip = self.psu_ip_address()
        if ip:
            headers["PSU-IP-Address"] = ip
        language = self.psu_language() if self.psu_language is not None else None
        if language:
            headers["PSU-Accept-Language"] = language
        token = self.bearer() if self.bearer is not None else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(extra or {})
        return headers

    async def call(
        self,
        method: str,
        path_or_href: str,
        *,
        stage: Stage,
        consent_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        answers: frozenset[str] = frozenset(),
    ) -> Reply:
        """The bank's answer; an error raises its typed failure, except one carrying a code of
        ``answers``, which the caller reads as an answer (a refused cancellation)."""
        if self.problem is not None:
            raise ProviderUnavailable(f"{self.params.name} cannot be reached: {self.problem}")
        url = self.resolve(path_or_href)
        request = self.http.build_request(
            method,
            url,
            params=dict(query) if query else None,
            json=dict(body) if body is not None else None,
            headers=self.headers(consent_id, headers),
            timeout=self.params.timeout_seconds,
        )
        if self.signer is not None:
            self.signer.sign(request)
        try:
            response = await self.http.send(request)
        except httpx.TimeoutException:
            raise ProviderUnavailable(
                f"{self.params.name} did not answer within {self.params.timeout_seconds:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"{self.params.name} cannot be reached: {exc}") from None
        except ssl.SSLError as exc:
            # httpcore passes a TLS alert read after the handshake (TLS 1.3: a bank refusing
            # the client certificate) through unmapped
            reason = getattr(exc, "reason", None) or exc
            raise ProviderUnavailable(
                f"{self.params.name} cannot be reached: the bank ended the TLS connection "
                f"({reason}); check the QWAC (bankhub eidas check)"
            ) from None
        parsed = self._json(response)
        if response.status_code >= 400 and not set(error_codes(parsed)) & answers:
            raise failure_for(response.status_code, parsed, response.headers, self.clock(), stage)
        return Reply(response.status_code, parsed, response.headers)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        return json_object(response, self.params.name)


def json_object(response: httpx.Response, bank: str) -> dict[str, Any]:
    """The answer's JSON object; an empty body is ``{}``, and so is an error answer that is not
    JSON (its status tells enough). A success that is not a JSON object is the bank's fault."""
    if not response.content:
        return {}
    try:
        parsed = json.loads(response.content)
    except ValueError:
        if response.status_code >= 400:
            return {}
        raise ProviderUnavailable(
            f"{bank} answered {response.request.url.path} with something that is not JSON"
        ) from None
    if not isinstance(parsed, dict):
        raise ProviderUnavailable(
            f"{bank} answered {response.request.url.path} with a JSON "
            f"{type(parsed).__name__} instead of an object"
        )
    return parsed
