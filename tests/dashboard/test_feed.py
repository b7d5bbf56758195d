"""The Bank Feed: every run that brought rows in, page by page and as JSON for the page's script;
the polling that does not keep a session alive; a test connect to the sandbox from the
dashboard; the sandbox users read from the connector."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.connectors.sandbox import connector as sandbox
from bankhub.customers.models import Customer
from bankhub.dashboard.feed_routes import RETURNED, TEST_CUSTOMER
from bankhub.dashboard.roles import Role
from bankhub.db import tenancy
from bankhub.partners.models import App
from bankhub.statements import cli as statement_cli
from bankhub.statements.importer import import_statement
from bankhub.sync import feed
from tests.api.connect_client import WAITING, ConnectDriver, connect, parse_callback
from tests.conftest import BASE_URL, Harness
from tests.dashboard.support import Visitor, make_member
from tests.statements.corpus import read
from tests.statements.uploads import new_customer, upload

Visitors = Callable[..., Visitor]
OFX = "ofx/bank_medium.ofx"  # 3 transactions in CAD
ROW = re.compile(r'<tr data-run="(\d+)">')
CANCELLED = json.dumps({"status": "cancelled"})


def _feed(h: Harness) -> str:
    return f"/dashboard/apps/{h.creds['client_id']}/feed"


async def _signed_in(h: Harness, visitors: Visitors, role: Role = Role.DEVELOPER) -> Visitor:
    v = visitors()
    await v.sign_in(await make_member(h, role, f"{role.value}-feed@example.com"))
    return v


async def _runs(v: Visitor, h: Harness) -> list[dict[str, Any]]:
    answer = await v.get(f"{_feed(h)}.json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


async def test_connects_refreshes_and_statement_files_show_with_added_and_skipped_rows(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    v = await _signed_in(h, visitors, Role.VIEWER)
    assert await _runs(v, h) == []
    empty = await v.get(_feed(h))
    assert 'id="feed-empty"' in empty.text

    login = await connect(h, "user_good")
    h.clock.advance(minutes=10)
    refreshed = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=login["secret"])
    )
    assert refreshed.status_code == 200, refreshed.text
    customer = await new_customer(h, "feed-files")
    first = await upload(h, customer, "march.ofx", read(OFX))
    assert first.status_code == 200, first.text
    again = await upload(h, customer, "march-again.ofx", read(OFX))
    assert again.status_code == 200, again.text
    refused = await upload(h, customer, "broken.ofx", read("ofx/error_message.ofx"))
    assert refused.status_code == 400, refused.text

    runs = await _runs(v, h)
    by_source = [(r["source"], r["added"], r["skipped"], r["ok"]) for r in runs]
    connected, refresh, imported, repeated, broken = reversed(runs)
    assert connected["source"] == "connect page"
    assert connected["connector"] == "sandbox"
    assert connected["added"] > 0, by_source
    assert connected["ok"], by_source
    assert connected["login_id"] == login["login_id"]
    assert connected["bank"]
    # the same bank answer again: nothing added, every row found stored already
    assert refresh["source"] == "refresh (API)", by_source
    assert refresh["added"] == 0, by_source
    assert refresh["skipped"] > 0, by_source
    assert (imported["source"], imported["added"], imported["skipped"]) == (
        "statement upload (API)",
        3,
        0,
    )
    assert imported["file_name"] == "march.ofx"
    assert imported["customer"] == "feed-files"
    assert (repeated["added"], repeated["skipped"]) == (0, 3)
    assert not broken["ok"], broken
    assert broken["outcome"] == "DataInvalid", broken
    assert "code 2000" in broken["error"]
    assert broken["file_name"] == "broken.ofx"
    assert broken["login_id"] is None
    assert broken["customer"] == "feed-files"

    page = await v.get(_feed(h))
    assert page.status_code == 200
    assert ROW.findall(page.text) == [str(r["id"]) for r in runs]
    assert "broken.ofx" in page.text
    assert "DataInvalid" in page.text
    assert 'data-poll="/dashboard/apps/' in page.text
    assert '<script src="/dashboard/static/feed.js" defer></script>' in page.text
    script = await v.get("/dashboard/static/feed.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text


async def test_imports_from_the_command_line_and_the_sftp_drop_say_so(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    customer = await new_customer(h, "feed-cli")
    parsed = statement_cli.parse(read(OFX), "cli.ofx")
    with tenancy.everything():
        async with h.hub.db.transaction(write=True) as session:
            app = (
                await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
            ).scalar_one()
            await import_statement(
                session, h.hub.engine, app, customer, parsed, source="cli", file_name="cli.ofx"
            )
            await import_statement(
                session, h.hub.engine, app, customer, parsed, source="sftp", file_name="drop.ofx"
            )
    v = await _signed_in(h, visitors)
    runs = await _runs(v, h)
    assert [(r["source"], r["file_name"], r["added"], r["skipped"]) for r in runs] == [
        ("SFTP drop", "drop.ofx", 0, 3),
        ("statement import (CLI)", "cli.ofx", 3, 0),
    ]


async def test_the_feed_pages_older_runs_and_only_the_newest_page_follows_along(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    login = await connect(h, "user_good")
    with tenancy.everything():
        async with h.hub.db.transaction(write=True) as session:
            app_id = (
                await session.execute(select(App.id).where(App.client_id == h.creds["client_id"]))
            ).scalar_one()
            for n in range(60):
                at = h.clock() + timedelta(seconds=n)
                feed.record(
                    session,
                    app_id=app_id,
                    login_id=login["login_id"],
                    kind="scheduled",
                    connector="sandbox",
                    started_at=at,
                    finished_at=at,
                )
    v = await _signed_in(h, visitors)
    first = await v.get(_feed(h))
    shown = ROW.findall(first.text)
    assert len(shown) == 50
    older = re.search(r'href="(/dashboard/apps/[^"]+/feed\?before=(\d+))"', first.text)
    assert older
    assert older.group(2) == shown[-1]
    second = await v.get(older.group(1))
    rest = ROW.findall(second.text)
    assert len(rest) == 11  # 60 refreshes and the connect
    assert int(rest[0]) < int(shown[-1])
    assert "data-poll" not in second.text  # an older page stays still
    assert "Newest runs" in second.text
    assert len(await _runs(v, h)) == 20
    junk = await v.get(f"{_feed(h)}?before=x&login=")
    assert junk.status_code == 200


async def test_polling_the_feed_does_not_keep_an_idle_session_alive(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    v = await _signed_in(h, visitors)
    assert (await v.get(_feed(h))).status_code == 200
    for _ in range(3):  # a tab left open polls on and on
        h.clock.advance(minutes=4)
        assert (await v.get(f"{_feed(h)}.json")).status_code == 200
    h.clock.advance(minutes=4)  # 16 minutes since the member last did anything
    after = await v.get(_feed(h))
    assert after.status_code == 303
    assert after.headers["location"] == "/dashboard/sign-in"
    polled = await v.get(f"{_feed(h)}.json")
    assert polled.status_code == 303  # the script stops on a redirect and says so


async def _walk(h: Harness, connect_url: str, username: str = "user_good") -> str:
    """The member on the connect page as the sandbox user, until it sends them back."""
    driver = ConnectDriver(h)
    await driver.open(connect_url)
    await driver.agree()
    await driver.login(username)
    for _ in range(400):
        if driver.status == 303 and "/dashboard/feed/returned/" in driver.location:
            return str(driver.location)
        if not driver.in_progress() and WAITING not in driver.page:
            found = re.search(r'id="return" href="([^"]+)"', driver.page)
            assert found, driver.page[:3000]
            return found.group(1).replace("&amp;", "&")
        await asyncio.sleep(0.02)
        await driver.show()
    raise AssertionError("the test connect did not end")


async def test_a_test_connect_runs_the_connect_page_and_shows_the_new_login_and_its_accounts(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    v = await _signed_in(h, visitors)
    page = await v.get(_feed(h))
    assert 'action="/dashboard/apps/' in page.text
    assert "Connect a test bank" in page.text
    started = await v.post(f"{_feed(h)}/test-connect", {"service_id": "1"})
    assert started.status_code == 303, started.text
    assert started.headers["location"].startswith(f"{BASE_URL}/v2/connect/term/")

    back = await _walk(h, started.headers["location"])
    payload = parse_callback(back)
    assert payload["status"] == "success"
    landed = await v.get(back.removeprefix(BASE_URL))
    assert landed.status_code == 303
    location = landed.headers["location"]
    assert location == f"{_feed(h)}?login={payload['login_id']}#tested"
    assert payload["secret"] not in location  # the login-secret stops here
    shown = await v.get(location.split("#")[0])
    assert f"Connected: login {payload['login_id']}" in shown.text
    assert len(re.findall(r'<tr data-account="\d+">', shown.text)) == 3  # user_good's three
    assert payload["secret"] not in shown.text
    runs = await _runs(v, h)
    assert runs[0]["login_id"] == payload["login_id"]
    assert runs[0]["customer"] == TEST_CUSTOMER
    # one clearly named test customer per app, however many test connects
    again = await v.post(f"{_feed(h)}/test-connect", {"service_id": "1"})
    assert again.status_code == 303
    with tenancy.everything():
        named, read_entries, started_entries = await _test_rows(h)
    assert len(named) == 1
    assert len(started_entries) == 2
    shown_reads = [e for e in read_entries if e.detail.get("resource") == "dashboard_test_connect"]
    assert len(shown_reads) == 1
    assert len(shown_reads[0].detail["account_ids"]) == 3

    cancelled = await v.get(f"{RETURNED}/{h.creds['client_id']}/{quote(CANCELLED, safe='')}")
    assert cancelled.headers["location"] == f"{_feed(h)}?done=cancelled"
    assert (await v.get(f"{RETURNED}/nonsense")).status_code == 400


async def _test_rows(h: Harness) -> tuple[list[Any], list[AuditEntry], list[AuditEntry]]:
    async with h.hub.db.transaction() as session:
        named = list(
            (await session.execute(select(Customer).where(Customer.identifier == TEST_CUSTOMER)))
            .scalars()
            .all()
        )
        reads = list(
            (await session.execute(select(AuditEntry).where(AuditEntry.target_type == "login")))
            .scalars()
            .all()
        )
        started = list(
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.action == "app.test_connect")
                )
            )
            .scalars()
            .all()
        )
    return named, reads, started


async def test_a_test_connect_is_for_builders_and_never_shows_another_apps_login(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    viewer = await _signed_in(h, visitors, Role.VIEWER)
    page = await viewer.get(_feed(h))
    assert 'id="test-connect-role"' in page.text
    assert (await viewer.post(f"{_feed(h)}/test-connect", {"service_id": "1"})).status_code == 403
    dev = await _signed_in(h, visitors)
    await dev.get(_feed(h))
    assert (await dev.post(f"{_feed(h)}/test-connect", {"service_id": "999"})).status_code == 400

    other = await h.new_app("other")
    theirs_headers = {
        "client-id": other["client_id"],
        "service-secret": other["service_secret"],
        "content-type": "application/json",
    }
    customer = await h.client.post(
        "/v2/customer", json={"identifier": "theirs"}, headers=theirs_headers
    )
    token = await h.client.post(
        "/v2/token",
        json={
            "customer_id": customer.json()["data"]["customer_id"],
            "service_id": 1,
            "callback_url": "http://localhost:2000/v2",
        },
        headers=theirs_headers,
    )
    driver = ConnectDriver(h)
    await driver.open(token.json()["data"]["connect_url"])
    await driver.agree()
    await driver.login("user_good")
    theirs = (await driver.finish()).payload["login_id"]
    success = quote(json.dumps({"status": "success", "login_id": theirs}), safe="")
    for path in (f"{_feed(h)}?login={theirs}", f"{RETURNED}/{h.creds['client_id']}/{success}"):
        assert (await dev.get(path)).status_code == 404, path
    mine = await dev.get(f"{_feed(h)}.json")
    assert mine.json()["entries"] == []  # the other app's connect is not in this app's feed


async def test_a_live_app_hides_the_test_connect_and_says_why(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            app = (
                await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
            ).scalar_one()
            app.mode = "live"
    dev = await _signed_in(h, visitors)
    page = await dev.get(_feed(h))
    assert 'id="no-test-connect"' in page.text
    assert "live mode" in page.text
    assert "/feed/test-connect" not in page.text
    refused = await dev.post(f"{_feed(h)}/test-connect", {"service_id": "1"})
    assert refused.status_code == 403
    # the users are still listed: a developer reads them when switching back
    assert 'id="sandbox-users"' in page.text


async def test_the_sandbox_users_listed_are_the_connectors_own(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    v = await _signed_in(h, visitors, Role.VIEWER)
    page = await v.get(_feed(h))
    listed = re.findall(r"<tr><td><code>(user_\w+)</code></td>", page.text)
    assert sorted(listed) == sorted(sandbox.USERS)
    assert listed[0] == "user_good"
    assert f"<code>{sandbox.PASSWORD}</code>" in page.text
    assert f"<code>{sandbox.ONE_TIME_CODE}</code>" in page.text


def test_the_docs_describe_every_sandbox_user() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sandbox.md").read_text()
    missing = [name for name in sandbox.USERS if f"`{name}`" not in docs]
    assert not missing, f"docs/sandbox.md does not describe {missing}"
