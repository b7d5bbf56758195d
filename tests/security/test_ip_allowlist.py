"""S17: the app's IP allow-list, the client address from trusted proxies only, referers."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import cast

import pytest
from litestar.types import Scope
from sqlalchemy import select
from typer.testing import CliRunner

from bankhub.cli import cli
from bankhub.config import Settings
from bankhub.db.engine import Database
from bankhub.partners.models import App
from bankhub.security.network import client_ip, referer_allowed
from tests.api.connect_client import create_customer, create_token
from tests.conftest import BASE_URL, Harness
from tests.security.edge import audit_entries, client_from, envelope, new_process

PROXIES = "10.0.0.0/8, fd00::/8"
OFFICE = "203.0.113.0/24"


def _scope(peer: str, *forwarded: str) -> Scope:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    # client_ip reads only these three keys of the scope Litestar would build in full
    return cast(Scope, {"type": "http", "client": (peer, 5000), "headers": headers})


def test_client_ip_comes_from_trusted_hops_only() -> None:
    """test_client_ip_comes_from_trusted_hops_only — S17: X-Forwarded-For is believed only as
    far as the hops that added it are trusted proxies; otherwise the socket peer is the client."""
    trusted = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))
    # no trusted proxies configured: the header is ignored
    assert client_ip(_scope("10.0.0.5", "198.51.100.7"), ()) == ip_address("10.0.0.5")
    # an untrusted peer cannot name another client
    assert client_ip(_scope("198.51.100.9", "203.0.113.1"), trusted) == ip_address("198.51.100.9")
    # walked from the right: two trusted hops, then the client; the spoofed left entry is ignored
    chain = _scope("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.4")
    assert client_ip(chain, trusted) == ip_address("203.0.113.9")
    # several header lines are one list, in order
    split = _scope("10.0.0.5", "1.2.3.4, 203.0.113.9", "10.0.0.4")
    assert client_ip(split, trusted) == ip_address("203.0.113.9")
    # IPv6 peers and hops, with ports and brackets
    v6 = _scope("fd00::1", "[2001:db8::7]:443")
    assert client_ip(v6, trusted) == ip_address("2001:db8::7")
    # an unreadable hop ends the walk at the trusted proxy that passed it on
    assert client_ip(_scope("10.0.0.5", "not-an-ip"), trusted) == ip_address("10.0.0.5")


def test_referer_patterns_match_origins_only() -> None:
    """test_referer_patterns_match_origins_only — S17: a browser key's Origin/Referer must match
    one of its patterns; wildcards cover subdomains, never look-alike or bare domains."""
    patterns = ["https://app.example.com", "https://*.example.org"]
    assert referer_allowed(None, "https://app.example.com", patterns)
    assert referer_allowed("https://app.example.com/some/page?x=1", None, patterns)
    assert referer_allowed("https://a.b.example.org/", None, patterns)
    assert not referer_allowed(None, "https://example.org", patterns)  # bare domain
    assert not referer_allowed(None, "https://evil-example.org", patterns)
    assert not referer_allowed(None, "https://app.example.com.evil.net", patterns)
    assert not referer_allowed(None, "http://app.example.com", patterns)  # scheme
    assert not referer_allowed(None, "https://app.example.com:8443", patterns)  # port
    assert referer_allowed(None, "https://app.example.com:443", patterns)
    assert not referer_allowed(None, None, patterns)  # neither header: refused
    assert not referer_allowed("javascript:alert(1)", None, patterns)
    # Origin wins over Referer; "null" origins fall back to the Referer
    assert not referer_allowed("https://app.example.com/", "https://evil.net", patterns)
    assert referer_allowed("https://app.example.com/", "null", patterns)
    assert referer_allowed(None, None, [])  # no patterns: no restriction


@pytest.mark.parametrize("harness", [{"trusted_proxies": PROXIES}], indirect=True)
async def test_allowlist_refuses_other_addresses(harness: Harness) -> None:
    """test_allowlist_refuses_other_addresses — S17: once an app lists CIDRs, API calls from any
    other client address get 403 AddressNotAllowed; the change is validated and audited."""
    h = harness
    app = new_process(h.hub)
    async with (
        client_from(app, "203.0.113.9") as office,
        client_from(app, "198.51.100.1") as elsewhere,
        client_from(app, "10.1.2.3") as proxy,
    ):
        bad = await office.put(
            "/v2/app/ip-allowlist",
            json={"cidrs": ["203.0.113.0/24", "300.1.1.1", "10.0.0.0/33"], "chosen_by": "ops"},
            headers=h.headers(),
        )
        assert bad.status_code == 400
        assert envelope(bad)["error"] == "DataInvalid"
        assert "300.1.1.1" in bad.json()["message"]
        assert "10.0.0.0/33" in bad.json()["message"]

        made = await office.put(
            "/v2/app/ip-allowlist",
            json={"cidrs": [OFFICE, "2001:db8::/32"], "chosen_by": "ops team"},
            headers=h.headers(),
        )
        assert made.status_code == 200, made.text
        assert made.json()["data"]["cidrs"] == [OFFICE, "2001:db8::/32"]
        [entry] = await audit_entries(h.hub, "app.ip_allowlist_changed")
        assert entry.detail["new_cidrs"] == [OFFICE, "2001:db8::/32"]
        assert entry.detail["chosen_by"] == "ops team"

        assert (await office.get("/v2/app", headers=h.headers())).status_code == 200
        refused = await elsewhere.get("/v2/app", headers=h.headers())
        assert refused.status_code == 403
        assert envelope(refused)["error"] == "AddressNotAllowed"
        assert "198.51.100.1" in refused.json()["message"]
        # a forged X-Forwarded-For from an untrusted peer changes nothing
        forged = await elsewhere.get(
            "/v2/app", headers={**h.headers(), "x-forwarded-for": "203.0.113.9"}
        )
        assert forged.status_code == 403
        # through the trusted proxy, the address it reports counts
        relayed = await proxy.get(
            "/v2/app", headers={**h.headers(), "x-forwarded-for": "203.0.113.77"}
        )
        assert relayed.status_code == 200
        relayed_out = await proxy.get(
            "/v2/app", headers={**h.headers(), "x-forwarded-for": "198.51.100.1"}
        )
        assert relayed_out.status_code == 403

        cleared = await office.put(
            "/v2/app/ip-allowlist", json={"cidrs": None, "chosen_by": "ops"}, headers=h.headers()
        )
        assert cleared.json()["data"]["cidrs"] is None
        assert (await elsewhere.get("/v2/app", headers=h.headers())).status_code == 200
        empty = await office.put(
            "/v2/app/ip-allowlist", json={"cidrs": [], "chosen_by": "ops"}, headers=h.headers()
        )
        assert empty.status_code == 400
        assert "null" in empty.json()["message"]


async def test_connect_page_is_not_behind_the_allowlist(harness: Harness) -> None:
    """test_connect_page_is_not_behind_the_allowlist — S17: end users open the connect page from
    anywhere; only the app's own API calls are limited."""
    h = harness
    app = new_process(h.hub)
    async with (
        client_from(app, "203.0.113.9") as office,
        client_from(app, "198.51.100.1") as phone,
    ):
        put = await office.put(
            "/v2/app/ip-allowlist",
            json={"cidrs": [OFFICE], "chosen_by": "ops"},
            headers=h.headers(),
        )
        assert put.status_code == 200
        h.client = office
        url = await create_token(h, await create_customer(h))
        opened = await phone.get(url.removeprefix(BASE_URL), follow_redirects=True)
        assert opened.status_code == 200, opened.text
        assert "AddressNotAllowed" not in opened.text
        assert (
            await phone.post("/v2/customer", json={"identifier": "x"}, headers=h.headers())
        ).status_code == 403


def test_cli_allow_ip_sets_and_clears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """test_cli_allow_ip_sets_and_clears — S17: `bankhub apps allow-ip CLIENT_ID CIDR...` and
    `--clear`, validated and audited like the API."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    created = runner.invoke(cli, ["apps", "create", "Office app", "--json"])
    assert created.exit_code == 0, created.output
    client_id = created.stdout.split('"client_id": "', 1)[1].split('"', 1)[0]

    def allowlist() -> list[str] | None:
        async def read() -> list[str] | None:
            db = Database(Settings().resolved_database_url())
            try:
                async with db.transaction() as session:
                    app = (
                        await session.execute(select(App).where(App.client_id == client_id))
                    ).scalar_one()
                    return app.ip_allowlist
            finally:
                await db.dispose()

        return asyncio.run(read())

    bad = runner.invoke(cli, ["apps", "allow-ip", client_id, "192.0.2.0/24", "nonsense"])
    assert bad.exit_code == 2
    assert "nonsense" in bad.output
    assert allowlist() is None
    ok = runner.invoke(cli, ["apps", "allow-ip", client_id, "192.0.2.0/24", "2001:db8::1"])
    assert ok.exit_code == 0, ok.output
    assert allowlist() == ["192.0.2.0/24", "2001:db8::1/128"]
    assert runner.invoke(cli, ["apps", "allow-ip", client_id]).exit_code == 2
    cleared = runner.invoke(cli, ["apps", "allow-ip", client_id, "--clear"])
    assert cleared.exit_code == 0, cleared.output
    assert allowlist() is None
    unknown = runner.invoke(cli, ["apps", "allow-ip", "no-such-client", "192.0.2.1"])
    assert unknown.exit_code == 2


async def test_an_app_key_is_refused_from_pages_not_on_its_referer_list(harness: Harness) -> None:
    """test_an_app_key_is_refused_from_pages_not_on_its_referer_list — S17: an app key with
    allowed referers works from a matching Origin or Referer and is refused (403
    RefererNotAllowed) from any other page or with neither header; keys without a list and
    service keys are not limited."""
    created = await harness.client.post(
        "/v2/keys",
        headers=harness.headers(),
        json={"scope": "read", "kind": "app", "allowed_referers": ["https://*.example.com"]},
    )
    assert created.status_code == 200, created.text
    key = created.json()["data"]
    assert key["allowed_referers"] == ["https://*.example.com"]
    base = {"client-id": harness.creds["client_id"], "app-secret": key["secret"]}

    async def call(**extra: str) -> tuple[int, str | None]:
        answer = await harness.client.get("/v2/service", headers={**base, **extra})
        return answer.status_code, answer.json().get("error")

    assert await call(origin="https://shop.example.com") == (200, None)
    assert await call(referer="https://shop.example.com/checkout?step=2") == (200, None)
    refused = (403, "RefererNotAllowed")
    assert await call() == refused
    assert await call(origin="https://example.com.evil.net") == refused
    assert await call(origin="https://evil.net", referer="https://shop.example.com/") == refused
    # the seed's app-secret (no list) and service keys are not limited by it
    mobile = harness.headers(mobile=True) | {"origin": "https://evil.net"}
    assert (await harness.client.get("/v2/service", headers=mobile)).status_code == 200
    service = harness.headers() | {"origin": "https://evil.net"}
    assert (await harness.client.get("/v2/service", headers=service)).status_code == 200


async def test_referer_patterns_must_be_origins(harness: Harness) -> None:
    """test_referer_patterns_must_be_origins — S17: an app key's referer list takes origins
    only; a path, a script URL or plain http outside dev is DataInvalid naming the entry, and
    no key is created."""
    before = (await harness.client.get("/v2/keys", headers=harness.headers())).json()["data"]
    for bad in ("https://shop.example.com/path", "javascript:alert(1)", "https://a b.com"):
        answer = await harness.client.post(
            "/v2/keys",
            headers=harness.headers(),
            json={"scope": "read", "kind": "app", "allowed_referers": [bad]},
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "DataInvalid"
        assert answer.json()["extra"]["problems"] == [f"allowed_referers: {bad!r}"]
    after = (await harness.client.get("/v2/keys", headers=harness.headers())).json()["data"]
    assert len(after) == len(before)


async def test_oauth_endpoints_are_behind_the_allowlist(harness: Harness) -> None:
    """test_oauth_endpoints_are_behind_the_allowlist — S17: /oauth/token, /oauth/introspect and
    /oauth/revoke refuse a client calling from outside its app's allow-list (403
    AddressNotAllowed) and grant, reveal and revoke nothing; from inside they work."""
    h = harness
    app = new_process(h.hub)
    auth = (h.creds["client_id"], h.creds["service_secret"])
    grant = {"grant_type": "client_credentials"}
    async with (
        client_from(app, "203.0.113.9") as office,
        client_from(app, "198.51.100.1") as elsewhere,
    ):
        issued = await office.post("/oauth/token", data=grant, auth=auth)
        assert issued.status_code == 200, issued.text
        tokens = issued.json()
        put = await office.put(
            "/v2/app/ip-allowlist",
            json={"cidrs": [OFFICE], "chosen_by": "ops"},
            headers=h.headers(),
        )
        assert put.status_code == 200, put.text

        async def grants() -> int:
            return len(await audit_entries(h.hub, "oauth.token_granted"))

        before = await grants()
        for path, form in (
            ("/oauth/token", grant),
            (
                "/oauth/token",
                {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            ),
            ("/oauth/introspect", {"token": tokens["access_token"]}),
            ("/oauth/revoke", {"token": tokens["refresh_token"]}),
        ):
            refused = await elsewhere.post(path, data=form, auth=auth)
            assert refused.status_code == 403, (path, refused.text)
            assert envelope(refused)["error"] == "AddressNotAllowed"
            assert "198.51.100.1" in refused.json()["message"]
            assert "access_token" not in refused.text
            assert "active" not in refused.json()
        assert await grants() == before
        assert await audit_entries(h.hub, "oauth.revoked") == []
        # nothing was revoked or rotated: the tokens still work from the office
        introspected = await office.post(
            "/oauth/introspect", data={"token": tokens["access_token"]}, auth=auth
        )
        assert introspected.json()["active"] is True
        refreshed = await office.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=auth,
        )
        assert refreshed.status_code == 200, refreshed.text
