"""The GoCardless connector against Prism serving the provider's own OpenAPI description.

Prism answers with the description's static examples, so these tests are about the requests
(each one must be valid against the description: no ``sl-violations`` about the request fails
the test) and about reading the description's own examples, errors included (asked for with
Prism's ``Prefer: code=…, example=…``), not about state.

The description declares bearer authentication for every path, ``token/new`` and
``token/refresh`` included; the provider does not ask for it there (no token exists before the
first one). The exchange hook adds a dummy bearer to those two requests only, so that Prism goes
on to validate their bodies instead of stopping at the security scheme.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bankhub.banks.gocardless import GoCardless, institution_records
from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    Answer,
    ConnectorContext,
    ConsentExpired,
    InteractionRejected,
    MemoryStateStore,
    NeedsRedirect,
    ProviderUnavailable,
    RateLimited,
)
from bankhub.connectors.gocardless import GoCardlessConnector
from bankhub.connectors.gocardless.client import Secrets
from bankhub.connectors.gocardless.tokens import TokenKeeper
from tests.conftest import FakeClock
from tests.connectors.gocardless.conftest import RETURN_URL, MemoryVault
from tests.support.prism import request_violations, serve

SPEC = (
    Path(__file__).resolve().parents[3]
    / ".."
    / "shared"
    / "corpus"
    / "openapi"
    / "gocardless-bad-v2"
    / "api.yml"
)
ACCOUNT = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(SPEC, tmp_path_factory.mktemp("prism-gocardless") / "prism.log")


class Recorder:
    """Every exchange with Prism and what Prism found wrong with each request."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, str, int, list[dict[str, Any]]]] = []
        #: ``Prefer`` for the next request whose path contains the key
        self.prefer: dict[str, str] = {}

    async def on_request(self, request: httpx.Request) -> None:
        if "/api/v2/token/" in request.url.path:
            request.headers["Authorization"] = "Bearer description-declares-one"
        for fragment, prefer in list(self.prefer.items()):
            if fragment in request.url.path:
                request.headers["Prefer"] = prefer
                del self.prefer[fragment]

    async def on_response(self, response: httpx.Response) -> None:
        request = response.request
        self.exchanges.append(
            (request.method, request.url.path, response.status_code, request_violations(response))
        )

    def assert_valid(self) -> None:
        assert self.exchanges
        bad = [e for e in self.exchanges if e[3]]
        assert not bad, bad


@pytest.fixture
async def recorder(prism: str) -> AsyncIterator[tuple[Recorder, httpx.AsyncClient]]:
    recorder = Recorder()
    hooks: dict[str, list[Any]] = {
        "request": [recorder.on_request],
        "response": [recorder.on_response],
    }
    async with httpx.AsyncClient(event_hooks=hooks) as http:
        yield recorder, http
    recorder.assert_valid()


def connector(
    prism: str, http: httpx.AsyncClient, clock: FakeClock, state: dict[str, Any] | None = None
) -> tuple[GoCardlessConnector, MemoryStateStore]:
    keeper = TokenKeeper(MemoryVault(Secrets("id", "key")), http, prism, clock)
    store = MemoryStateStore(state)
    context = ConnectorContext(
        institution={
            "slug": "bank-1001",
            "name": "N26 Bank",
            "institution_id": "N26_NTSBDEB1",
            "history_days": 90,
            "consent_days": 90,
        },
        http=http,
        state=store,
        clock=clock,
        return_url=RETURN_URL,
        options={"gocardless_tokens": keeper, "gocardless_url": prism, "user_language": "de"},
    )
    return GoCardlessConnector(context), store


LINKED = {
    "agreement_id": ACCOUNT,
    "requisition_id": ACCOUNT,
    "valid_until": "2027-02-18T09:00:00+00:00",
    "history_days": 90,
    "accounts": {ACCOUNT: ACCOUNT},
}


async def test_tokens_obtained_and_refreshed(
    prism: str, recorder: tuple[Recorder, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = recorder
    vault = MemoryVault(Secrets("secret-id", "secret-key"))
    keeper = TokenKeeper(vault, http, prism, clock)
    assert await keeper.access_token() == "string"
    assert vault.pair is not None
    assert vault.pair.access_expires_at == clock() + timedelta(seconds=86400)
    assert vault.pair.refresh_expires_at == clock() + timedelta(seconds=2592000)
    clock.advance(days=1)
    await keeper.access_token()
    assert [e[1] for e in recorder[0].exchanges] == [
        "/api/v2/token/new/",
        "/api/v2/token/refresh/",
    ]


async def test_institutions_become_bank_records(
    prism: str, recorder: tuple[Recorder, httpx.AsyncClient], clock: FakeClock
) -> None:
    _, http = recorder
    access = GoCardless(None, None, http, clock, prism)  # type: ignore[arg-type]
    access.keeper = TokenKeeper(MemoryVault(Secrets("id", "key")), http, prism, clock)
    found = institution_records(await access.institutions("DE"), "DE")
    assert not found.skipped
    by_key = {r.key: r for r in found.records}
    abn = by_key["gocardless:DE:ABNAMRO_FTSBDEFAXXX"]
    assert (abn.name, abn.bic, abn.country_code, abn.connector) == (
        "ABN AMRO Bank Commercial",
        "FTSBDEFAXXX",
        "DE",
        "gocardless",
    )
    assert abn.params == {"institution_id": "ABNAMRO_FTSBDEFAXXX", "history_days": 558}
    assert abn.logo_url == "https://cdn.nordigen.com/ais/ABNAMRO_FTSBDEFAXXX.png"


async def test_agreement_requisition_and_the_way_back(
    prism: str, recorder: tuple[Recorder, httpx.AsyncClient], clock: FakeClock
) -> None:
    rec, http = recorder
    gc, store = connector(prism, http, clock)
    with pytest.raises(NeedsRedirect) as raised:
        await gc.authenticate({})
    assert raised.value.url.startswith("https://ob.nordigen.com/psd2/start/")
    assert store.load()["pending"]["requisition_id"] == "string"
    # the description's requisition is still CR: the user did not go through
    with pytest.raises(InteractionRejected):
        await gc.resume(Answer("redirect", params={}))
    assert [(m, p) for m, p, _, _ in rec.exchanges][-4:] == [
        ("POST", "/api/v2/agreements/enduser/"),
        ("POST", "/api/v2/requisitions/"),
        ("GET", "/api/v2/requisitions/string/"),
        ("DELETE", "/api/v2/requisitions/string/"),
    ]


async def test_reads_and_revoke(
    prism: str, recorder: tuple[Recorder, httpx.AsyncClient], clock: FakeClock
) -> None:
    rec, http = recorder
    gc, store = connector(prism, http, clock, LINKED)
    with pytest.raises(ProviderUnavailable, match="CR"):
        await gc.open_session()  # the description's requisition is CR, not linked
    account = AccountRecord(ACCOUNT, "Main", AccountType.CURRENT, "EUR", None)
    since = clock().date() - timedelta(days=30)
    assert await gc.fetch_transactions(account, since, clock().date()) == []
    with pytest.raises(ProviderUnavailable, match="no balance"):
        await gc.fetch_accounts()  # the description's balances are an empty object
    await gc.revoke()
    assert store.load() == {}
    paths = [(m, p) for m, p, _, _ in rec.exchanges]
    assert ("GET", f"/api/v2/accounts/{ACCOUNT}/transactions/") in paths
    assert ("GET", f"/api/v2/accounts/{ACCOUNT}/details/") in paths
    assert ("GET", f"/api/v2/accounts/{ACCOUNT}/balances/") in paths
    assert ("DELETE", f"/api/v2/requisitions/{ACCOUNT}/") in paths


@pytest.mark.parametrize(
    ("code", "example", "failure"),
    [
        (401, "AccessExpiredError", ConsentExpired),
        (401, "AccountInactiveError", ConsentExpired),
        (401, "FailedAuthentication", ConsentExpired),
        (403, "AccountEUAScopeError", ConsentExpired),
        (403, "AccountValidEUAError", ConsentExpired),
        (403, "AccountAccessForbidden", ConsentExpired),
        (404, "AccountNotFoundError", ConsentExpired),
        (409, "AccountSuspendedError", ConsentExpired),
        (409, "AccountStateError", ProviderUnavailable),
        (429, "RateLimitError", RateLimited),
        (500, "UnknownRequestError", ProviderUnavailable),
        (503, "ServiceError", ProviderUnavailable),
        (503, "ConnectionError", ProviderUnavailable),
    ],
)
async def test_the_descriptions_errors(
    prism: str,
    recorder: tuple[Recorder, httpx.AsyncClient],
    clock: FakeClock,
    code: int,
    example: str,
    failure: type[Exception],
) -> None:
    rec, http = recorder
    gc, _ = connector(prism, http, clock, LINKED)
    await gc.client.tokens.access_token()
    rec.prefer["/transactions/"] = f"code={code}, example={example}"
    account = AccountRecord(ACCOUNT, "Main", AccountType.CURRENT, "EUR", None)
    with pytest.raises(failure) as raised:
        await gc.fetch_transactions(account, None, None)
    assert type(raised.value) is failure or issubclass(type(raised.value), failure)
    assert rec.exchanges[-1][2] == code
    if code == 401:
        # an answer about the agreement is not taken for a refused token: no renewal
        assert not any("/token/refresh/" in e[1] for e in rec.exchanges)
