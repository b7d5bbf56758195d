"""The HTTP side of UK Open Banking: the bank's OpenID metadata, its token endpoint and the
account information resource server, with the FAPI headers, and errors mapped to failures.

Every call goes through ``context.http``, which presents the operator's transport certificate
(the OBWAC or QWAC, ``security/eidas.py``) as the TLS client certificate: the token endpoint
authenticates bankhub by it and by the ``private_key_jwt`` assertion, and binds the tokens it
issues to it (FAPI 1 Advanced 5.2.2, RFC 8705).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from bankhub.clock import Clock
from bankhub.connectors.base import (
    ConnectorFailure,
    ConsentExpired,
    InteractionRejected,
    ProviderUnavailable,
    RateLimited,
)
from bankhub.connectors.ukob.fapi import SigningKey, client_assertion
from bankhub.connectors.ukob.params import UkobParams
from bankhub.connectors.xs2a.client import json_object, retry_after
from bankhub.connectors.xs2a.parse import obj, text

#: what a call is for: a 401/403 while reading means the consent is gone; at login it does not
Stage = Literal["login", "read"]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class AccessTokenRejected(ConsentExpired):
    """A read answered 401: the access token is no longer good; a refresh may still be."""


@dataclass(frozen=True, slots=True)
class Metadata:
    """What bankhub needs of the bank's OpenID Provider metadata."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    response_types: tuple[str, ...]
    pkce: bool


def error_text(body: Mapping[str, Any]) -> str:
    """The OBErrorResponse1 ``Errors`` (codes and messages) or an OAuth error, as one line."""
    parts: list[str] = []
    for error in body.get("Errors") or []:
        if isinstance(error, Mapping):
            code, message = text(error.get("ErrorCode")), text(error.get("Message"))
            parts.append(": ".join(p for p in (code, message) if p))
    for key in ("error", "error_description", "Message"):
        if text(body.get(key)):
            parts.append(str(body[key]))
    return "; ".join(p for p in parts if p)


def failure_for(
    status: int, body: Mapping[str, Any], headers: httpx.Headers, now: datetime, stage: Stage
) -> ConnectorFailure:
    detail = error_text(body)
    said = f" ({detail})" if detail else ""
    wait = retry_after(headers, now)
    if status == 429:
        return RateLimited(f"The bank refuses more requests for now{said}", retry_after=wait)
    if stage == "read" and status == 401:
        return AccessTokenRejected(f"The bank no longer accepts the access token{said}")
    if stage == "read" and status == 403:
        # the spec's answer for a consent the user revoked, or one that expired at the bank
        return ConsentExpired(f"The bank no longer accepts the consent (revoked or expired){said}")
    if status >= 500:
        return ProviderUnavailable(f"The bank answered HTTP {status}{said}", retry_after=wait)
    return ProviderUnavailable(f"The bank refused the request with HTTP {status}{said}")


class UkobClient:
    """Sends Open Banking requests and turns errors into failures."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        params: UkobParams,
        clock: Clock,
        customer_ip: Callable[[], str | None],
        signing_key: SigningKey | None,
        problem: str | None = None,
    ) -> None:
        self.http = http
        self.params = params
        self.clock = clock
        self.customer_ip = customer_ip
        self.signing_key = signing_key
        #: why the transport or signing certificate cannot be used; nothing is sent then
        self.problem = problem
        self._metadata: Metadata | None = None
        self._jwks: dict[str, Any] | None = None
        parts = urlsplit(params.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"

    # --- transport ----------------------------------------------------------------------------

    async def _send(self, request: httpx.Request) -> httpx.Response:
        if self.problem is not None:
            raise ProviderUnavailable(f"{self.params.name} cannot be reached: {self.problem}")
        try:
            return await self.http.send(request)
        except httpx.TimeoutException:
            raise ProviderUnavailable(
                f"{self.params.name} did not answer within {self.params.timeout_seconds:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"{self.params.name} cannot be reached: {exc}") from None
        except ssl.SSLError as exc:
            # a TLS alert after the handshake (TLS 1.3: the bank refusing the certificate)
            reason = getattr(exc, "reason", None) or exc
            raise ProviderUnavailable(
                f"{self.params.name} ended the TLS connection ({reason}); check the transport "
                "certificate (bankhub banks check)"
            ) from None

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        return json_object(response, self.params.name)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        request = self.http.build_request(
            "GET", url, headers={"Accept": "application/json"}, timeout=self.params.timeout_seconds
        )
        response = await self._send(request)
        if response.status_code != 200:
            raise ProviderUnavailable(
                f"{self.params.name} answered HTTP {response.status_code} for its {what}"
            )
        return self._json(response)

    # --- the authorization server -----------------------------------------------------------

    async def metadata(self) -> Metadata:
        """The bank's OpenID Provider metadata, read once per connector."""
        if self._metadata is None:
            found = await self._get_json(self.params.well_known_url, "OpenID configuration")
            needed = {
                key: text(found.get(key))
                for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
            }
            missing = [key for key, value in needed.items() if not value]
            if missing:
                raise ProviderUnavailable(
                    f"{self.params.name}'s OpenID configuration lacks {', '.join(missing)}"
                )
            types = found.get("response_types_supported")
            methods = found.get("code_challenge_methods_supported")
            self._metadata = Metadata(
                issuer=str(needed["issuer"]),
                authorization_endpoint=str(needed["authorization_endpoint"]),
                token_endpoint=str(needed["token_endpoint"]),
                jwks_uri=str(needed["jwks_uri"]),
                response_types=tuple(t for t in types if isinstance(t, str))
                if isinstance(types, list)
                else (),
                pkce=isinstance(methods, list) and "S256" in methods,
            )
        return self._metadata

    async def jwks(self) -> dict[str, Any]:
        if self._jwks is None:
            self._jwks = await self._get_json((await self.metadata()).jwks_uri, "key set")
        return self._jwks

    def key(self) -> SigningKey:
        if self.signing_key is None:
            raise ProviderUnavailable(
                f"No signing certificate is configured for {self.params.name}: set the bank's "
                "params.qseal_cert_file and qseal_key_file (or BANKHUB_XS2A_QSEAL_*)"
            )
        return self.signing_key

    async def token(self, form: Mapping[str, str], *, stage: Stage) -> dict[str, Any]:
        """A token endpoint call with ``private_key_jwt`` client authentication over mTLS.

        ``invalid_grant`` on a refresh means the bank ended the authorisation: the consent is
        gone (``ConsentExpired``); ``invalid_client`` is the operator's registration to fix.
        """
        metadata = await self.metadata()
        assertion = client_assertion(
            self.key(),
            self.params.signing_key_id,
            self.params.client_id,
            metadata.token_endpoint,
            self.clock(),
        )
        request = self.http.build_request(
            "POST",
            metadata.token_endpoint,
            data={
                **form,
                "client_id": self.params.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            headers={"Accept": "application/json"},
            timeout=self.params.timeout_seconds,
        )
        response = await self._send(request)
        body = self._json(response)
        if response.status_code == 200 and text(body.get("access_token")):
            return body
        error = text(body.get("error")) or f"HTTP {response.status_code}"
        detail = error_text(body)
        if response.status_code == 429:
            raise RateLimited(
                f"{self.params.name}'s token endpoint refuses more requests for now",
                retry_after=retry_after(response.headers, self.clock()),
            )
        if error == "invalid_grant":
            if stage == "read":
                raise ConsentExpired(f"{self.params.name} ended the authorisation ({detail})")
            raise InteractionRejected(f"{self.params.name} did not accept the login ({detail})")
        if error in ("invalid_client", "unauthorized_client"):
            raise ProviderUnavailable(
                f"{self.params.name} refused bankhub's client registration ({detail}); the "
                "operator must check client_id, signing_key_id and the certificates"
            )
        raise ProviderUnavailable(f"{self.params.name}'s token endpoint answered {detail or error}")

    async def probe(self) -> str:
        """What ``bankhub banks check --connect`` asks: a client-credentials token, which the
        bank grants only over the registered transport certificate, with an assertion signed by
        the registered key for the registered client id. Nothing is created at the bank."""
        await self.token({"grant_type": "client_credentials", "scope": "accounts"}, stage="login")
        return (
            "the bank accepts the transport certificate, the signing key "
            f"({self.params.signing_key_id}) and the client id ({self.params.client_id})"
        )

    # --- the resource server ----------------------------------------------------------------

    def resolve(self, path_or_url: str) -> str:
        """An absolute URL for a path under ``base_url`` or a ``Links`` URL of the same host."""
        parts = urlsplit(path_or_url)
        if parts.scheme or parts.netloc:
            if f"{parts.scheme}://{parts.netloc}" != self._origin:
                raise ProviderUnavailable(
                    f"{self.params.name} linked to another host ({parts.netloc}); not following it"
                )
            return path_or_url
        return f"{self.params.base_url}{path_or_url}"

    def headers(self, access_token: str, present: bool) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {access_token}",
            "x-fapi-interaction-id": str(uuid.uuid4()),
        }
        if self.params.financial_id:
            headers["x-fapi-financial-id"] = self.params.financial_id
        ip = self.customer_ip() if present else None
        if ip:
            headers["x-fapi-customer-ip-address"] = ip
        return headers

    async def call(
        self,
        method: str,
        path_or_url: str,
        access_token: str,
        *,
        stage: Stage,
        present: bool = False,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        request = self.http.build_request(
            method,
            self.resolve(path_or_url),
            params=dict(query) if query else None,
            json=dict(body) if body is not None else None,
            headers=self.headers(access_token, present),
            timeout=self.params.timeout_seconds,
        )
        response = await self._send(request)
        parsed = self._json(response)
        if response.status_code >= 400:
            raise failure_for(response.status_code, parsed, response.headers, self.clock(), stage)
        return response.status_code, parsed


def consent_status(body: Mapping[str, Any]) -> str:
    return text(obj(body.get("Data")).get("Status")) or "unknown"
