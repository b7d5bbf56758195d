"""TLS at both ends: HTTPS only on the API outside dev, HSTS (S26); outbound trust (S31).

Outbound connections trust the operating system's store through ``truststore`` by default: it is
the store the operator already manages (corporate CAs, distrusted roots removed by OS updates),
where ``certifi`` would be a snapshot frozen at the package's release. ``BANKHUB_CA_BUNDLE``
replaces it with a PEM bundle; a catalogue entry's ``ca_bundle`` param does the same for one
institution's connector.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import truststore
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from bankhub.config import Settings
from bankhub.errors import DomainError, ErrorCode
from bankhub.security.eidas import Credential, present_client_certificate
from bankhub.security.network import from_trusted_proxy

HSTS = "max-age=63072000; includeSubDomains"
#: answered over plain HTTP even in production: the load balancer's health check
PLAIN_HTTP_PATHS = frozenset({"/healthz", "/readyz"})


# --- inbound: S26 --------------------------------------------------------------------------------


def _forwarded_proto(scope: Scope) -> str:
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-forwarded-proto"]
    if not values:
        return ""
    # the nearest proxy appends last
    return values[-1].split(",")[-1].strip().lower()


def is_secure(scope: Scope, settings: Settings) -> bool:
    """Served over TLS: by bankhub itself, or by a trusted proxy that says so."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    return (
        from_trusted_proxy(scope, settings.trusted_networks) and _forwarded_proto(scope) == "https"
    )


class TransportMiddleware:
    """Outside dev, plain HTTP is refused, not redirected. A route middleware, so that the
    refusal is answered by the application's error handlers (envelope or page)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == ScopeType.HTTP
            and not self.settings.is_dev
            and scope["path"] not in PLAIN_HTTP_PATHS
            and not is_secure(scope, self.settings)
        ):
            raise DomainError(
                ErrorCode.HTTPS_REQUIRED,
                "Plain HTTP is refused: send this request over HTTPS. Behind a TLS-terminating "
                "proxy, list the proxy in BANKHUB_TRUSTED_PROXIES and have it send "
                "X-Forwarded-Proto: https.",
            )
        await self.app(scope, receive, send)


# --- outbound: S31 -------------------------------------------------------------------------------


#: connections per outbound client (the shared one and each institution's own)
OUTBOUND_LIMITS = httpx.Limits(max_connections=100)


def outbound_ssl_context(ca_bundle: Path | str | None = None) -> ssl.SSLContext:
    """Certificate and host name checks always on; trust the given bundle, else the system."""
    if ca_bundle is not None:
        path = Path(ca_bundle)
        if not path.is_file():
            raise ValueError(f"CA bundle {path} is not a readable file")
        return ssl.create_default_context(cafile=str(path))
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class InstitutionClients:
    """One HTTP client per institution CA bundle and eIDAS client certificate; the shared client
    for everyone else.

    A connector reads its institution's params; ``client_for(params, qwac)`` returns the client
    whose trust store is the ``ca_bundle`` param when there is one, and which presents the QWAC
    as its TLS client certificate when one is given (XS2A banks, ``security.eidas``). The bank's
    server is checked against that trust store all the same (S31).
    """

    def __init__(
        self, shared: httpx.AsyncClient, timeout: float, ca_bundle: Path | None = None
    ) -> None:
        self.shared = shared
        self.timeout = timeout
        #: the shared client's trust store (``BANKHUB_CA_BUNDLE``), for a client of its own
        #: made only to present a QWAC
        self.ca_bundle = ca_bundle
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client_for(
        self, params: Mapping[str, Any], qwac: Credential | None = None
    ) -> httpx.AsyncClient:
        bundle = params.get("ca_bundle")
        if not bundle and qwac is None:
            return self.shared
        key = f"{bundle or ''}|{qwac.fingerprint if qwac else ''}"
        client = self._clients.get(key)
        if client is None:
            context = outbound_ssl_context(str(bundle) if bundle else self.ca_bundle)
            if qwac is not None:
                present_client_certificate(context, qwac)
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,
                limits=OUTBOUND_LIMITS,
                verify=context,
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
