"""S27: the connect page may be framed only by its app's chosen origins; every page carries
nosniff, Referrer-Policy and COOP. S32: the docs endpoints can be switched off."""

from __future__ import annotations

import secrets

import pytest

from bankhub.config import Environment
from tests.api.connect_client import create_customer, create_token
from tests.conftest import BASE_URL, Harness
from tests.security.edge import audit_entries, envelope

#: a fixed key-encryption key: production settings require one
TEST_KEK = "q" * 43


async def _open_connect_page(h: Harness) -> str:
    customer = f"frame-check-{secrets.token_hex(4)}"
    url = await create_token(h, await create_customer(h, customer))
    page = await h.client.get(url.removeprefix(BASE_URL), follow_redirects=True)
    assert page.status_code == 200, page.text
    return str(page.headers["content-security-policy"])


async def test_connect_page_frame_ancestors_follow_the_app(harness: Harness) -> None:
    """test_connect_page_frame_ancestors_follow_the_app — S27: frame-ancestors is 'none' until
    the app names origins through PUT /v2/app/frame-origins (validated, audited)."""
    h = harness
    assert "frame-ancestors 'none'" in await _open_connect_page(h)

    for bad in ("https://a.test; script-src *", "https://a.test/path", "javascript:x", "*"):
        refused = await h.client.put(
            "/v2/app/frame-origins",
            json={"origins": [bad], "chosen_by": "web team"},
            headers=h.headers(),
        )
        assert refused.status_code == 400, bad
        assert envelope(refused)["error"] == "DataInvalid"
    chosen = await h.client.put(
        "/v2/app/frame-origins",
        json={"origins": ["https://App.Example.com/", "https://*.example.org"], "chosen_by": "web"},
        headers=h.headers(),
    )
    assert chosen.status_code == 200, chosen.text
    origins = ["https://app.example.com", "https://*.example.org"]
    assert chosen.json()["data"]["origins"] == origins
    [entry] = await audit_entries(h.hub, "app.frame_origins_changed")
    assert entry.detail["new_origins"] == origins

    policy = await _open_connect_page(h)
    assert "frame-ancestors https://app.example.com https://*.example.org" in policy
    assert "'none'" not in policy.split("frame-ancestors", 1)[1]
    assert "script-src 'none'" in policy

    # another app's connect page is not framable by these origins
    other = await h.new_app("other")
    h2 = Harness(h.hub, h.client, other)
    assert "frame-ancestors 'none'" in await _open_connect_page(h2)

    await h.client.put(
        "/v2/app/frame-origins", json={"origins": None, "chosen_by": "web"}, headers=h.headers()
    )
    assert "frame-ancestors 'none'" in await _open_connect_page(h)


async def test_every_page_has_the_page_headers(harness: Harness) -> None:
    """test_every_page_has_the_page_headers — S27: nosniff, Referrer-Policy and COOP (and the
    strict CSP) on connect pages, error pages and the sandbox bank's pages."""
    h = harness
    url = await create_token(h, await create_customer(h))
    pages = [
        await h.client.get(url.removeprefix(BASE_URL), follow_redirects=True),
        await h.client.get("/v2/connect/term/no-such-token"),
        await h.client.get("/v2/connect/session"),
    ]
    sandbox = await h.client.get("/sandbox-bank/")
    if sandbox.headers.get("content-type", "").startswith("text/html"):
        pages.append(sandbox)
    for page in pages:
        assert page.headers["content-type"].startswith("text/html"), page.url
        assert page.headers["x-content-type-options"] == "nosniff", page.url
        assert page.headers["referrer-policy"] == "no-referrer", page.url
        assert page.headers["cross-origin-opener-policy"] == "same-origin", page.url
        assert "unsafe-inline" not in page.headers["content-security-policy"], page.url


@pytest.mark.parametrize(
    "harness",
    [
        {"docs": "off"},
        {"env": Environment.PRODUCTION, "kek": TEST_KEK, "trusted_proxies": "127.0.0.1"},
    ],
    indirect=True,
)
async def test_docs_can_be_switched_off(harness: Harness) -> None:
    """test_docs_can_be_switched_off — S32: BANKHUB_DOCS=off (the production default) serves
    neither /docs nor /openapi.json."""
    https = {"x-forwarded-proto": "https"}
    for path in ("/docs", "/docs/swagger", "/openapi.json", "/docs/openapi.json"):
        response = await harness.client.get(path, headers=https)
        assert response.status_code == 404, path
    assert (
        await harness.client.get("/v2/service", headers={**harness.headers(), **https})
    ).status_code == 200


@pytest.mark.parametrize(
    "harness",
    [
        {},
        {
            "env": Environment.PRODUCTION,
            "kek": TEST_KEK,
            "docs": "public",
            "trusted_proxies": "127.0.0.1",
        },
    ],
    indirect=True,
)
async def test_docs_are_public_when_chosen(harness: Harness) -> None:
    """test_docs_are_public_when_chosen — S32: public in dev by default, or when set."""
    https = {"x-forwarded-proto": "https"}
    spec = await harness.client.get("/openapi.json", headers=https)
    assert spec.status_code == 200
    assert spec.json()["openapi"].startswith("3.")
    assert (await harness.client.get("/docs", headers=https)).status_code == 200
