"""Every request the UK Open Banking connector sends to a resource server, validated by Prism
serving the Open Banking Read/Write API v3.1.11 account information spec.

Prism answers from the spec's schema (``"Amount": "string"``, links to example.com), which no
connector could read, and keeps no state. So each request bankhub sends to the resource server
goes to Prism first, and any ``sl-violations`` about the request fails the test; the answer
bankhub reads is the stateful peer's, whose links are rewritten to point at Prism again, so
the pages that ``Links.Next`` chains are validated too.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import Answer, ConnectorContext, MemoryStateStore, NeedsRedirect
from bankhub.connectors.ukob import UkobConnector
from bankhub.security import eidas
from bankhub.security.tls import outbound_ssl_context
from tests.conftest import FakeClock
from tests.connectors.ukob.conftest import PSU_IP, RETURN_URL, params, visit
from tests.connectors.ukob.peer import API, ObBank
from tests.connectors.xs2a.eidas_pki import EidasPki
from tests.support.prism import ROOT, request_violations, serve

UK_SPEC = (
    ROOT / ".." / "shared" / "corpus" / "openapi" / "uk-ob-v3.1.11" / "account-info-openapi.yaml"
)


@pytest.fixture(scope="module")
def ukob_prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a Prism mock serving the UK Open Banking account information spec."""
    yield from serve(UK_SPEC, tmp_path_factory.mktemp("prism-ukob") / "prism.log")


class ThroughPrism(httpx.AsyncBaseTransport):
    """Resource-server requests: validated by Prism, answered by the peer."""

    def __init__(self, inner: httpx.AsyncBaseTransport, prism: str, peer_api: str) -> None:
        self.inner = inner
        self.prism = prism
        self.peer_api = peer_api
        self.checker = httpx.AsyncClient()
        #: (method, path, Prism's status, Prism's violations of the request)
        self.checked: list[tuple[str, str, int, list[dict[str, Any]]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if not url.startswith(self.prism):
            return await self.inner.handle_async_request(request)
        headers = [
            (k, v) for k, v in request.headers.items() if k not in ("host", "content-length")
        ]
        body = await request.aread()
        verdict = await self.checker.request(request.method, url, headers=headers, content=body)
        self.checked.append(
            (request.method, request.url.path, verdict.status_code, request_violations(verdict))
        )
        forwarded = httpx.Request(
            request.method, self.peer_api + url[len(self.prism) :], headers=headers, content=body
        )
        answer = await self.inner.handle_async_request(forwarded)
        content = (await answer.aread()).replace(self.peer_api.encode(), self.prism.encode())
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() != "content-length"]
        return httpx.Response(answer.status_code, headers=kept, content=content)

    async def aclose(self) -> None:
        await self.checker.aclose()
        await self.inner.aclose()


@pytest.fixture
async def through_prism(
    bank: ObBank, ukob_pki: EidasPki, ukob_prism_url: str
) -> AsyncIterator[ThroughPrism]:
    context: ssl.SSLContext = outbound_ssl_context(ukob_pki.bank_ca)
    source = eidas.bank_source(params(ukob_pki, bank), "qwac", "Peer Bank UK")
    assert source is not None
    eidas.present_client_certificate(context, eidas.load(source, role=None, now=datetime.now(UTC)))
    transport = ThroughPrism(
        httpx.AsyncHTTPTransport(verify=context), ukob_prism_url, f"{bank.mtls_origin}{API}"
    )
    yield transport
    await transport.aclose()


async def test_every_resource_request_is_valid_against_the_spec(
    bank: ObBank,
    ukob_pki: EidasPki,
    ukob_prism_url: str,
    through_prism: ThroughPrism,
    clock: FakeClock,
) -> None:
    institution = params(ukob_pki, bank, base_url=ukob_prism_url)
    seal = eidas.bank_source(institution, "qseal", "Peer Bank UK")
    assert seal is not None
    key = eidas.load(seal, role=None, now=datetime.now(UTC)).key
    store = MemoryStateStore()
    async with httpx.AsyncClient(transport=through_prism) as http:

        def connector(present: bool) -> UkobConnector:
            options: dict[str, Any] = {"signing_key": key}
            if present:
                options["psu_ip_address"] = PSU_IP
            return UkobConnector(
                ConnectorContext(
                    institution=institution,
                    http=http,
                    state=store,
                    clock=clock,
                    return_url=RETURN_URL,
                    options=options,
                )
            )

        first = connector(present=True)
        with pytest.raises(NeedsRedirect) as caught:
            await first.authenticate({})
        await first.resume(Answer("redirect", params=await visit(caught.value)))

        later = connector(present=False)
        await later.open_session()
        accounts = await later.fetch_accounts()
        assert len(accounts) == 2
        for account in accounts:
            assert await later.fetch_transactions(account, None, None)
        await later.revoke()

    paths = [(m, p) for m, p, _, _ in through_prism.checked]
    assert paths.count(("GET", "/accounts/acc-current/transactions")) == 3  # Links.Next, twice
    assert ("POST", "/account-access-consents") in paths
    assert ("DELETE", f"/account-access-consents/{next(iter(bank.consents))}") in paths
    assert {m for m, _ in paths} == {"GET", "POST", "DELETE"}
    assert [(m, p, v) for m, p, _, v in through_prism.checked if v] == []
    assert all(status < 400 for _, _, status, _ in through_prism.checked)
