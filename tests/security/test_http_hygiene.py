"""Transport hygiene of the API: no caching of authenticated answers (S24), body limits (S34)."""

from __future__ import annotations

import pytest

from tests.api.connect_client import connect
from tests.conftest import Harness


async def test_authenticated_answers_are_never_cached(harness: Harness) -> None:
    h = harness
    login = await connect(h, "user_good")
    for method, path, secret in (
        ("GET", "/v2/service", None),
        ("GET", "/v2/account", login["secret"]),
        ("GET", "/v2/transaction", login["secret"]),
        ("GET", "/v2/login", login["secret"]),
        ("GET", "/v2/event", None),
        ("GET", "/v2/app", None),
        ("POST", "/v2/customer", None),
    ):
        headers = h.headers(login_secret=secret)
        body = {"identifier": "cache-check"} if method == "POST" else None
        response = await h.client.request(method, path, headers=headers, json=body)
        assert response.status_code < 500, (path, response.text)
        assert response.headers["cache-control"] == "no-store", path
    # failures too, and whatever the path when credentials were sent
    refused = await h.client.get("/v2/account", headers={"client-id": "nobody"})
    assert refused.headers["cache-control"] == "no-store"
    public = await h.client.get("/service.json")
    assert "no-store" not in public.headers.get("cache-control", "")


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 4 * 1024 * 1024])
async def test_bodies_over_the_limit_are_refused(harness: Harness, size: int) -> None:
    big = b'{"identifier": "' + b"x" * size + b'"}'
    response = await harness.client.post("/v2/customer", content=big, headers=harness.headers())
    assert response.status_code == 413
    assert set(response.json()) == {"error", "message", "extra"}
