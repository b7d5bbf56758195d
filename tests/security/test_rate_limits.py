"""S33: rate limits per address, per API key and per app, stricter on token and connect
submissions, answered with 429, Retry-After and the IETF RateLimit fields. An app's and a key's
limits count only requests whose credential was verified; everything else counts for its
address."""

from __future__ import annotations

import re

import httpx
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


def assert_limited(response: httpx.Response, exhausted: str) -> None:
    """A 429 as every 429 must be: Retry-After, and RateLimit fields naming the exhausted
    policy with nothing left."""
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 900
    assert f'"{exhausted}";q=' in response.headers["ratelimit-policy"]
    assert _remaining(response.headers["ratelimit"])[exhausted] == 0


@pytest.mark.parametrize("harness", [SMALL], indirect=True)
async def test_credential_limit_answers_429_with_fields(harness: Harness) -> None:
    """test_credential_limit_answers_429_with_fields — S33: a key past its limit gets 429
    RateLimited with Retry-After; every answer carries RateLimit-Policy and RateLimit for the
    key's and the app's limits (authenticated calls are not their address's)."""
    h = harness
    app = new_process(h.hub)
    async with client_from(app, "203.0.113.10") as client:
        for n in range(4):
            ok = await client.get("/v2/app", headers=h.headers())
            assert ok.status_code == 200, ok.text
            policy = ok.headers["ratelimit-policy"]
            assert '"credential";q=4;w=60' in policy
            assert '"app";q=5;w=60' in policy
            assert '"ip"' not in policy
            assert _remaining(ok.headers["ratelimit"]) == {"credential": 3 - n, "app": 4 - n}
        refused = await client.get("/v2/app", headers=h.headers())
        assert_limited(refused, "credential")
        assert envelope(refused)["error"] == "RateLimited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["cache-control"] == "no-store"
        # the app's other secret is another key; refused requests consumed nothing
        mobile = await client.get("/v2/app", headers=h.headers(mobile=True))
        assert mobile.status_code == 200
        assert _remaining(mobile.headers["ratelimit"])["app"] == 0
        again = await client.get("/v2/app", headers=h.headers(mobile=True))
        assert_limited(again, "app")
        assert envelope(again)["error"] == "RateLimited"


@pytest.mark.parametrize("harness", [SMALL], indirect=True)
async def test_a_client_id_alone_never_uses_up_the_apps_limit(harness: Harness) -> None:
    """test_a_client_id_alone_never_uses_up_the_apps_limit — S33: requests naming a victim's
    client-id without its secret (none, or a wrong one) count for their own address only; the
    victim's real calls keep the app's whole limit."""
    h = harness
    app = new_process(h.hub)
    victim = h.creds["client_id"]
    async with (
        client_from(app, "198.51.100.31") as attacker,
        client_from(app, "2001:db8::31") as second,
        client_from(app, "203.0.113.40") as partner,
    ):
        for _ in range(31):
            await attacker.get("/service.json", headers={"client-id": victim})
        for client in (attacker, second):
            for headers in (
                {"client-id": victim},
                {"client-id": victim, "service-secret": "guessed"},
                {"client-id": victim, "app-secret": "guessed"},
                {"client-id": victim, "authorization": "Bearer guessed"},
            ):
                await client.get("/v2/app", headers=headers)
        assert (await attacker.get("/service.json")).status_code == 429  # its own address
        for n in range(5):  # 4 is the key's limit, 5 the app's
            ok = await partner.get("/v2/app", headers=h.headers(mobile=n == 4))
            assert ok.status_code == 200, ok.text
            assert _remaining(ok.headers["ratelimit"])["app"] == 4 - n
        assert_limited(await partner.get("/v2/app", headers=h.headers(mobile=True)), "app")


@pytest.mark.parametrize("harness", [SMALL], indirect=True)
async def test_unverified_requests_count_per_address_and_never_starve_a_partner(
    harness: Harness,
) -> None:
    """test_unverified_requests_count_per_address_and_never_starve_a_partner — S33: requests
    without a verified credential (public pages, wrong or missing secrets) share their
    address's limit and, past it, are answered 429 whatever their own answer would be; partners
    calling from the same address (a NAT) are not counted there and keep being served."""
    h = harness
    app = new_process(h.hub)
    other = await h.new_app("behind the same NAT")
    other_headers = {"client-id": other["client_id"], "service-secret": other["service_secret"]}
    wrong = {**h.headers(), "service-secret": "not-the-secret"}
    async with client_from(app, "192.0.2.77") as nat:
        assert [(await nat.get("/service.json")).status_code for _ in range(6)] == [200] * 6
        assert_limited(await nat.get("/service.json"), "ip")
        for headers in (wrong, {"client-id": h.creds["client_id"]}, {}):
            refused = await nat.get("/v2/app", headers=headers)
            assert_limited(refused, "ip")
            assert envelope(refused)["error"] == "RateLimited"
        bad_token = await nat.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(h.creds["client_id"], "not-the-secret"),
        )
        assert_limited(bad_token, "ip")
        for headers in (h.headers(), h.headers(mobile=True), other_headers):
            served = await nat.get("/v2/app", headers=headers)
            assert served.status_code == 200, served.text
            assert '"ip"' not in served.headers["ratelimit-policy"]
        token = await nat.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(other["client_id"], other["service_secret"]),
        )
        assert token.status_code == 200, token.text

    async with client_from(app, "192.0.2.78") as guesser:
        # wrong secrets are answered as such while the address has room, and use it up
        for _ in range(6):
            answer = await guesser.get("/v2/app", headers=wrong)
            assert envelope(answer)["error"] == "CredentialInvalid"
            assert '"ip";q=6' in answer.headers["ratelimit-policy"]
        assert_limited(await guesser.get("/v2/app", headers=wrong), "ip")
        assert_limited(await guesser.get("/service.json"), "ip")
        assert (await guesser.get("/v2/app", headers=h.headers())).status_code == 200


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
    """test_token_and_connect_limits_are_stricter — S33: the token endpoints have their own,
    smaller limit, per key once the credential is verified and per address before; connect
    form submissions theirs, per address."""
    h = harness
    app = new_process(h.hub)
    async with client_from(app, "203.0.113.30") as client:
        body = {"customer_id": "nope", "service_id": 1, "callback_url": "http://localhost/cb"}
        first = await client.post("/v2/token", json=body, headers=h.headers())
        assert first.status_code != 429
        assert '"token";q=2;w=60' in first.headers["ratelimit-policy"]
        assert (await client.post("/v2/token", json=body, headers=h.headers())).status_code != 429
        third = await client.post("/v2/token", json=body, headers=h.headers())
        assert_limited(third, "token")
        assert envelope(third)["error"] == "RateLimited"
        # the app's other key has a token budget of its own
        other = await client.post("/v2/token", json=body, headers=h.headers(mobile=True))
        assert other.status_code != 429
    second = await h.new_app("second")
    async with client_from(app, "203.0.113.32") as guesser:
        for _ in range(2):
            wrong = await guesser.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(second["client_id"], "not-the-secret"),
            )
            assert wrong.json()["error"] == "invalid_client"
        assert_limited(
            await guesser.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(second["client_id"], "not-the-secret"),
            ),
            "token",
        )
        # the address's token budget is for unverified attempts: the right secret still works
        served = await guesser.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(second["client_id"], second["service_secret"]),
        )
        assert served.status_code == 200, served.text
        assert '"credential";q=4' in served.headers["ratelimit-policy"]
    async with client_from(app, "203.0.113.31") as browser:
        form = {"csrf": "x", "action": "agree"}
        codes = [
            (await browser.post("/v2/connect/consent", data=form)).status_code for _ in range(4)
        ]
        assert 429 not in codes[:3]
        assert codes[3] == 429


@pytest.mark.parametrize("harness", [SMALL], indirect=True)
async def test_a_bearer_token_counts_for_the_key_it_was_granted_with(harness: Harness) -> None:
    """test_a_bearer_token_counts_for_the_key_it_was_granted_with — S33: calls with an access
    token count against the key that obtained it and its app, so tokens are no way around
    the key's limit."""
    h = harness
    app = new_process(h.hub)
    async with client_from(app, "203.0.113.50") as client:
        granted = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(h.creds["client_id"], h.creds["service_secret"]),
        )
        assert granted.status_code == 200, granted.text
        bearer = {"authorization": f"Bearer {granted.json()['access_token']}"}
        assert _remaining(granted.headers["ratelimit"])["credential"] == 3
        for n in range(3):
            ok = await client.get("/v2/app", headers=bearer)
            assert ok.status_code == 200, ok.text
            assert _remaining(ok.headers["ratelimit"])["credential"] == 2 - n
        assert_limited(await client.get("/v2/app", headers=bearer), "credential")
        assert_limited(await client.get("/v2/app", headers=h.headers()), "credential")


@pytest.mark.parametrize("harness", [SMALL], indirect=True)
async def test_calls_from_outside_the_allowlist_consume_nothing_of_the_apps_limits(
    harness: Harness,
) -> None:
    """test_calls_from_outside_the_allowlist_consume_nothing_of_the_apps_limits — S17, S33:
    the allow-list is checked before anything counts against the app, so a stolen secret used
    from elsewhere cannot use up the partner's limits; such calls count for their address."""
    h = harness
    app = new_process(h.hub)
    async with (
        client_from(app, "203.0.113.60") as office,
        client_from(app, "198.51.100.60") as elsewhere,
    ):
        put = await office.put(
            "/v2/app/ip-allowlist",
            json={"cidrs": ["203.0.113.0/24"], "chosen_by": "ops"},
            headers=h.headers(),
        )
        assert put.status_code == 200, put.text
        for _ in range(6):
            refused = await elsewhere.get("/v2/app", headers=h.headers())
            assert envelope(refused)["error"] == "AddressNotAllowed"
            assert '"ip";q=6' in refused.headers["ratelimit-policy"]
        assert_limited(await elsewhere.get("/v2/app", headers=h.headers()), "ip")
        for n in range(3):
            ok = await office.get("/v2/app", headers=h.headers())
            assert ok.status_code == 200, ok.text
            assert _remaining(ok.headers["ratelimit"]) == {"credential": 2 - n, "app": 3 - n}


RATE_AND_BLOCK = {
    **SMALL,
    "block_enabled": True,
    "block_failures": 5,
    "block_window_seconds": 60,
    "block_seconds": 600,
    "block_cache_seconds": 0,
}


@pytest.mark.parametrize("harness", [RATE_AND_BLOCK], indirect=True)
async def test_every_429_carries_retry_after_and_the_ratelimit_fields(harness: Harness) -> None:
    """test_every_429_carries_retry_after_and_the_ratelimit_fields — S33: whichever limit
    refuses (the address's, a key's, an app's, the connect form's, the dashboard's sign-in,
    an address block), the 429 says when to come back (Retry-After) and which limit it hit
    (RateLimit-Policy, RateLimit), in the envelope for the API and on the pages."""
    h = harness
    app = new_process(h.hub)
    async with client_from(app, "198.51.100.90") as client:
        for _ in range(6):
            await client.get("/service.json")
        assert_limited(await client.get("/service.json"), "ip")
        assert_limited(await client.get("/v2/app", headers={"client-id": "x"}), "ip")
        for _ in range(4):
            await client.get("/v2/service", headers=h.headers())
        assert_limited(await client.get("/v2/service", headers=h.headers()), "credential")
    async with client_from(app, "198.51.100.91") as browser:
        for _ in range(3):
            await browser.post("/dashboard/sign-in", data={"email": "a@b.c", "password": "x"})
        page = await browser.post("/dashboard/sign-in", data={"email": "a@b.c", "password": "x"})
        assert_limited(page, "connect")
        assert page.headers["content-type"].startswith("text/html")
        for _ in range(3):
            await browser.post("/v2/connect/consent", data={"csrf": "x"})
        connect_page = await browser.post("/v2/connect/consent", data={"csrf": "x"})
        assert_limited(connect_page, "connect")
        assert connect_page.headers["content-type"].startswith("text/html")
    async with client_from(app, "198.51.100.92") as guesser:
        wrong = {**h.headers(), "service-secret": "not-the-secret"}
        for _ in range(5):
            assert (await guesser.get("/v2/app", headers=wrong)).status_code == 400
        for path in ("/v2/app", "/dashboard/sign-in"):
            blocked = await guesser.get(path, headers=h.headers())
            assert_limited(blocked, "block")
            assert 590 <= int(blocked.headers["retry-after"]) <= 600
            assert '"block";q=5;w=60' in blocked.headers["ratelimit-policy"]
        assert envelope(await guesser.get("/v2/app", headers=h.headers()))["error"] == (
            "AddressBlocked"
        )
