"""S33: rate limits per address, per credential and per app, stricter on token and connect
submissions, answered with 429, Retry-After and the IETF RateLimit fields."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Harness
from tests.security.edge import client_from, envelope, new_process

SMALL = {
    "rate_limits_enabled": True,
    "rate_limit_per_ip": "6/minute",
    "rate_limit_per_credential": "4/minute",
    "rate_limit_per_app": "5/minute",
    "rate_limit_token": "2/minute",
    "rate_limit_connect": "3/minute",
}
FIELD = re.compile(r'"(?P<name>[a-z0-9-]+)";r=(?P<r>\d+);t=(?P<t>\d+)')


def _remaining(header: str) -> dict[str, int]:
    return {m["name"]: int(m["r"]) for m in FIELD.finditer(header)}


@pytest.mark.parametrize("harness", [SMALL], indirect=True)
async def test_credential_limit_answers_429_with_fields(harness: Harness) -> None:
    """test_credential_limit_answers_429_with_fields — S33: a credential past its limit gets 429
    RateLimited with Retry-After; every answer carries RateLimit-Policy and RateLimit."""
    h = harness
    app = new_process(h.hub)
    async with client_from(app, "203.0.113.10") as client:
        for n in range(4):
            ok = await client.get("/v2/app", headers=h.headers())
            assert ok.status_code == 200, ok.text
            policy = ok.headers["ratelimit-policy"]
            assert '"ip";q=6;w=60' in policy
            assert '"credential";q=4;w=60' in policy
            assert '"app";q=5;w=60' in policy
            assert _remaining(ok.headers["ratelimit"])["credential"] == 3 - n
        refused = await client.get("/v2/app", headers=h.headers())
        assert refused.status_code == 429
        assert envelope(refused)["error"] == "RateLimited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert _remaining(refused.headers["ratelimit"])["credential"] == 0
        assert refused.headers["cache-control"] == "no-store"
        # the app's other secret is another credential; refused requests consumed nothing
        mobile = await client.get("/v2/app", headers=h.headers(mobile=True))
        assert mobile.status_code == 200
        assert _remaining(mobile.headers["ratelimit"])["app"] == 0
        assert (await client.get("/v2/app", headers=h.headers(mobile=True))).status_code == 429


@pytest.mark.parametrize("harness", [SMALL], indirect=True)
async def test_address_limit_applies_without_credentials(harness: Harness) -> None:
    """test_address_limit_applies_without_credentials — S33: one address cannot exceed its
    limit whatever it sends; other addresses keep their own budget; /healthz is exempt."""
    h = harness
    app = new_process(h.hub)
    async with client_from(app, "198.51.100.20") as noisy, client_from(app, "2001:db8::5") as calm:
        statuses = [(await noisy.get("/service.json")).status_code for _ in range(7)]
        assert statuses == [200] * 6 + [429]
        assert (await calm.get("/service.json")).status_code == 200
        assert (await noisy.get("/healthz")).status_code == 200


@pytest.mark.parametrize("harness", [SMALL], indirect=True)
async def test_token_and_connect_limits_are_stricter(harness: Harness) -> None:
    """test_token_and_connect_limits_are_stricter — S33: POST /v2/token and connect form
    submissions have their own, smaller limits."""
    h = harness
    app = new_process(h.hub)
    async with client_from(app, "203.0.113.30") as client:
        body = {"customer_id": "nope", "service_id": 1, "callback_url": "http://localhost/cb"}
        first = await client.post("/v2/token", json=body, headers=h.headers())
        assert first.status_code != 429
        assert '"token";q=2;w=60' in first.headers["ratelimit-policy"]
        assert (await client.post("/v2/token", json=body, headers=h.headers())).status_code != 429
        third = await client.post("/v2/token", json=body, headers=h.headers())
        assert third.status_code == 429
        assert envelope(third)["error"] == "RateLimited"
    async with client_from(app, "203.0.113.31") as browser:
        form = {"csrf": "x", "action": "agree"}
        codes = [
            (await browser.post("/v2/connect/consent", data=form)).status_code for _ in range(4)
        ]
        assert 429 not in codes[:3]
        assert codes[3] == 429
