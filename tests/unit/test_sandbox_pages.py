"""The sandbox bank's own consent page (the far end of the redirect scenario)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bankhub.connectors.base import Answer, ConnectorContext, MemoryStateStore, NeedsRedirect
from bankhub.connectors.sandbox import SandboxConnector, bank
from bankhub.connectors.sandbox.pages import router

RETURN_URL = "https://partner.example/return?term=t1"


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    with TestClient(Litestar(route_handlers=[router])) as test_client:
        yield test_client


def page(client: TestClient[Litestar], **params: str) -> httpx.Response:
    query = {"request": "req-1", "return_url": RETURN_URL, **params}
    # an English-speaking browser: without a language the page speaks its bank's country's
    # (tests/unit/test_i18n_catalogs.py)
    return client.get("/sandbox-bank/authorize", params=query, headers={"accept-language": "en"})


def test_page_asks_to_approve_or_deny(client: TestClient[Litestar]) -> None:
    response = page(client, bank="sandbox-bank-vn")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<title>Sandbox Bank Việt Nam" in html
    assert 'name="viewport"' in html
    assert 'method="post" action="authorize"' in html
    assert 'type="hidden" name="request" value="req-1"' in html
    assert ">Approve</button>" in html
    assert ">Deny</button>" in html
    assert "<style" not in html
    assert "style=" not in html
    assert "<script" not in html


def test_page_speaks_the_language_the_connect_page_hinted(client: TestClient[Litestar]) -> None:
    # ui_locales (best first) wins over the English browser: the connect page spoke Vietnamese
    hinted = page(client, bank="sandbox-bank-de", ui_locales="vi de").text
    assert '<html lang="vi">' in hinted
    assert "Đồng ý" in hinted
    # a hint of languages the pages do not speak is passed over, the next one taken
    assert '<html lang="de">' in page(client, bank="sandbox-bank-vn", ui_locales="ja de-DE").text
    # none of them spoken: the browser's language, as without a hint
    unspoken = page(client, bank="sandbox-bank-vn", ui_locales="ja zz-ZZ").text
    assert '<html lang="en">' in unspoken
    assert ">Approve</button>" in unspoken


def test_page_escapes_what_it_is_given(client: TestClient[Litestar]) -> None:
    html = page(client, request='"><script>alert(1)</script>').text
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "return_url", ["javascript:alert(1)", "ftp://x.example/", "/relative", "data:text/html,x"]
)
def test_only_http_return_urls(client: TestClient[Litestar], return_url: str) -> None:
    assert page(client, return_url=return_url).status_code == 400
    response = client.post(
        "/sandbox-bank/authorize",
        data={"request": "r", "return_url": return_url, "decision": "approve"},
        follow_redirects=False,
    )
    assert response.status_code == 400


def test_stylesheet_is_served_separately(client: TestClient[Litestar]) -> None:
    response = client.get("/sandbox-bank/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "button" in response.text


def test_approve_returns_a_signed_code(client: TestClient[Litestar]) -> None:
    response = client.post(
        "/sandbox-bank/authorize",
        data={"request": "req-1", "return_url": RETURN_URL, "decision": "approve"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.netloc == "partner.example"
    query = parse_qs(location.query)
    assert query["term"] == ["t1"]
    assert query["request"] == ["req-1"]
    assert bank.is_valid_consent_code("req-1", query["code"][0])
    assert not bank.is_valid_consent_code("req-2", query["code"][0])


def test_deny_returns_access_denied(client: TestClient[Litestar]) -> None:
    response = client.post(
        "/sandbox-bank/authorize",
        data={"request": "req-1", "return_url": RETURN_URL, "decision": "deny"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query == {"term": ["t1"], "request": ["req-1"], "error": ["access_denied"]}


async def test_redirect_scenario_end_to_end(client: TestClient[Litestar]) -> None:
    async with httpx.AsyncClient() as http:
        connector = SandboxConnector(
            ConnectorContext(
                institution={"seed": 1, "currency": "GBP", "country_code": "GB", "slug": "x"},
                http=http,
                state=MemoryStateStore(),
                clock=lambda: datetime(2025, 1, 2, tzinfo=UTC),
                return_url=RETURN_URL,
                public_url="http://testserver.local",
            )
        )
        with pytest.raises(NeedsRedirect) as sent:
            await connector.authenticate({"username": "user_redirect", "password": "pass_good"})
        url = urlsplit(sent.value.url)
        shown = client.get(f"{url.path}?{url.query}")
        assert shown.status_code == 200
        form = parse_qs(url.query)
        back = client.post(
            url.path,
            data={
                "request": form["request"][0],
                "return_url": form["return_url"][0],
                "decision": "approve",
            },
            follow_redirects=False,
        )
        params = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["location"]).query).items()}
        await connector.resume(Answer("redirect", params=params))
        assert len(await connector.fetch_accounts()) == 3
