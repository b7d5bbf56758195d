"""Fixtures for the UK Open Banking connector: the test PKI, the peer bank (authlib
authorization server and stateful resource server) and connectors wired to it over mutual TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import (
    Answer,
    ConnectorContext,
    MemoryStateStore,
    NeedsRedirect,
)
from bankhub.connectors.ukob import UkobConnector
from bankhub.security import eidas
from bankhub.security.tls import InstitutionClients
from tests.conftest import FakeClock
from tests.connectors.ukob.peer import API, CLIENT_ID, SIGNING_KID, ObBank, running, tpp_jwks
from tests.connectors.xs2a.eidas_pki import EidasPki, make_eidas_pki

RETURN_URL = "http://127.0.0.1:9/v2/connect/return?state=connect-session-state"
REDIRECT_URI = "http://127.0.0.1:9/v2/connect/return"
PSU_IP = "198.51.100.7"
FINANCIAL_ID = "0015800001041RHAAY"

Build = Callable[..., UkobConnector]


@pytest.fixture(scope="session")
def ukob_pki(tmp_path_factory: pytest.TempPathFactory) -> EidasPki:
    """Transport (QWAC) and signing (QSealC) certificates of a test QTSP, a bank CA; made once."""
    return make_eidas_pki(tmp_path_factory.mktemp("ukob-pki"))


@pytest.fixture
def clock() -> FakeClock:
    """Now: the peer's authlib checks JWT times against the real clock."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def bank(request: pytest.FixtureRequest, ukob_pki: EidasPki) -> Iterator[ObBank]:
    """The peer bank; ``@pytest.mark.parametrize("bank", [{...}], indirect=True)`` configures it."""
    options: dict[str, Any] = getattr(request, "param", {})
    peer = ObBank(tpp_jwks(ukob_pki.qseal.certificate), **options)
    peer.redirect_uris = [REDIRECT_URI]
    with running(peer, ukob_pki) as served:
        yield served


def params(pki: EidasPki, bank: ObBank, **extra: Any) -> dict[str, Any]:
    return {
        "slug": "peer-bank-uk",
        "name": "Peer Bank UK",
        "base_url": f"{bank.mtls_origin}{API}",
        "well_known_url": f"{bank.public_origin}/.well-known/openid-configuration",
        "client_id": CLIENT_ID,
        "signing_key_id": SIGNING_KID,
        "financial_id": FINANCIAL_ID,
        "ca_bundle": str(pki.bank_ca),
        "qwac_cert_file": str(pki.qwac.cert),
        "qwac_key_file": str(pki.qwac.key),
        "qseal_cert_file": str(pki.qseal.cert),
        "qseal_key_file": str(pki.qseal.key),
        **extra,
    }


@pytest.fixture
async def clients() -> AsyncIterator[InstitutionClients]:
    async with httpx.AsyncClient() as shared:
        made = InstitutionClients(shared, 10.0)
        yield made
        await made.aclose()


@pytest.fixture
def build(bank: ObBank, ukob_pki: EidasPki, clients: InstitutionClients, clock: FakeClock) -> Build:
    """``build(store=None, qwac=True, **params)`` → a connector for the peer bank, reached the
    way the sync engine reaches it: the bank's own transport and signing certificates, loaded
    and checked by ``security.eidas``, the transport one presented over TLS."""

    def make(
        store: MemoryStateStore | None = None,
        *,
        qwac: bool = True,
        signing_key: Any = None,
        present: bool = True,
        **extra: Any,
    ) -> UkobConnector:
        institution = params(ukob_pki, bank, **extra)
        now = datetime.now(UTC)  # the certificates are checked as at start-up, not later
        transport = eidas.bank_source(institution, "qwac", "Peer Bank UK")
        seal = eidas.bank_source(institution, "qseal", "Peer Bank UK")
        assert transport is not None
        assert seal is not None
        loaded_qwac = eidas.load(transport, role=None, now=now) if qwac else None
        loaded_seal = eidas.load(seal, role=None, now=now)
        options: dict[str, Any] = {"signing_key": signing_key or loaded_seal.key}
        if present:
            options["psu_ip_address"] = PSU_IP
            options["user_language"] = "vi"
        context = ConnectorContext(
            institution=institution,
            http=clients.client_for(institution, loaded_qwac),
            state=store if store is not None else MemoryStateStore(),
            clock=clock,
            return_url=RETURN_URL,
            options=options,
        )
        return UkobConnector(context)

    return make


async def visit(interaction: NeedsRedirect, decision: str = "approve") -> dict[str, str]:
    """The user at the bank's page: approve (or deny); returns what the bank sends back (the
    fragment of the hybrid flow or the query of the code flow), as the return page reads it."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(httpx.URL(interaction.url).copy_add_param("decision", decision))
    assert page.status_code == 302, page.text
    back = httpx.URL(page.headers["location"])
    assert str(back).startswith(REDIRECT_URI)
    raw = back.fragment or back.query.decode()
    return dict(httpx.QueryParams(raw))


async def login(connector: UkobConnector, decision: str = "approve") -> dict[str, str]:
    """authenticate → the bank's page → resume; returns what the bank sent back."""
    with pytest.raises(NeedsRedirect) as caught:
        await connector.authenticate({})
    reply = await visit(caught.value, decision)
    await connector.resume(Answer("redirect", params=reply))
    return reply
