"""Fixtures for the XS2A connector: the stateful peer bank and the Prism mock of the spec."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import (
    Answer,
    ConnectorContext,
    Interaction,
    MemoryStateStore,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    NeedsRedirect,
)
from bankhub.connectors.xs2a import Xs2aConnector
from tests.conftest import FakeClock
from tests.connectors.xs2a.eidas_pki import EidasPki, make_eidas_pki
from tests.connectors.xs2a.peer import PeerBank, running
from tests.support.prism import prism_url  # noqa: F401 - the fixture, for this package

RETURN_URL = "http://127.0.0.1/v2/connect/return"
PSU_IP = "192.0.2.10"
#: the connect page's language, forwarded as PSU-Accept-Language while the user is present
PSU_LANGUAGE = "de"
PSU_ID = "erika"
PASSWORD = "open-sesame"

Build = Callable[..., Xs2aConnector]


@pytest.fixture
def bank(request: pytest.FixtureRequest) -> Iterator[PeerBank]:
    """The peer bank; ``@pytest.mark.parametrize("bank", [{...}], indirect=True)`` configures it."""
    options: dict[str, Any] = getattr(request, "param", {})
    with running(PeerBank(**options)) as peer:
        yield peer


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def institution(bank: PeerBank, approach: str, **extra: Any) -> dict[str, Any]:
    return {
        "slug": "peer-bank-de",
        "name": "Peer Bank",
        "base_url": bank.base_url,
        "sca_approaches": ["REDIRECT", "DECOUPLED", "EMBEDDED"],
        "preferred_sca_approach": approach,
        "psu_id_required": approach != "REDIRECT",
        "decoupled_poll_seconds": 0,
        **extra,
    }


@pytest.fixture
def build(bank: PeerBank, http: httpx.AsyncClient, clock: FakeClock) -> Build:
    """``build(approach, store=None, **params)`` → a connector for the peer bank."""

    def make(approach: str, store: MemoryStateStore | None = None, **extra: Any) -> Xs2aConnector:
        context = ConnectorContext(
            institution=institution(bank, approach, **extra),
            http=http,
            state=store if store is not None else MemoryStateStore(),
            clock=clock,
            return_url=RETURN_URL,
            options={"psu_ip_address": PSU_IP, "user_language": PSU_LANGUAGE},
        )
        return Xs2aConnector(context)

    return make


def responder(bank: PeerBank, http: httpx.AsyncClient, *, approve: bool = True) -> Any:
    """Answers interactions the way a user at the connect page would (the right answers)."""

    async def respond(interaction: Interaction) -> Answer:
        if isinstance(interaction, NeedsRedirect):
            decision = "approve" if approve else "deny"
            # the bank's page keeps the query it was given (an authorization request's)
            page = await http.get(httpx.URL(interaction.url).copy_add_param("decision", decision))
            assert page.status_code == 302, page.text
            back = httpx.URL(page.headers["location"])
            return Answer("redirect", params=dict(back.params))
        if isinstance(interaction, NeedsDecoupledApproval):
            return Answer.poll()
        if isinstance(interaction, NeedsChoice):
            return Answer("choice", interaction.options[-1].id)
        if isinstance(interaction, NeedsCode):
            return Answer("code", bank.code if approve else "000000")
        raise AssertionError(f"unexpected {interaction!r}")

    return respond


async def login(connector: Xs2aConnector, respond: Any, credentials: dict[str, str]) -> int:
    """Drive authenticate/resume to the end; returns how many interactions it took."""
    steps = 0
    call = connector.authenticate(credentials)
    while True:
        try:
            await call
            return steps
        except (NeedsRedirect, NeedsDecoupledApproval, NeedsChoice, NeedsCode) as interaction:
            steps += 1
            assert steps < 10
            call = connector.resume(await respond(interaction))


@pytest.fixture(scope="session")
def eidas_pki(tmp_path_factory: pytest.TempPathFactory) -> EidasPki:
    """A test QTSP's QWACs and QSealCs (PSD2 QCStatements) and a bank CA, made once per run."""
    return make_eidas_pki(tmp_path_factory.mktemp("eidas"))
