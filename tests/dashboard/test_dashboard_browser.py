"""The dashboard in headless Chromium against one real ``bankhub serve`` process for the module.

The tests run in file order and build on each other, like a team's first day: the owner signs
up and enrols (TOTP codes from pyotp), signs in again, sets up mail and invites a viewer (the
mail is caught by aiosmtpd on loopback), the viewer finds no key buttons and a forged roll is
refused, the owner rolls and revokes keys and the API refuses the old ones, a cross-site form
is refused, five wrong codes block the viewer. Then the owner creates an app, adds a webhook
endpoint on a loopback partner site, a real sandbox connect through the connect page makes
events that arrive there and show in the delivery log, one is replayed; the overview's charts
show that activity; the login is revoked in Consent Control and the API refuses its
login-secret; the app's branding shows on the connect page (name, texts, logo, colours by
computed style); and every page fits a 360 px screen without console errors. Timeouts are
proven with the injected clock in ``test_sign_in.py``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pyotp
import pytest
from playwright.sync_api import Page, expect

from bankhub.dashboard import services, totp
from bankhub.webhooks import signing
from tests.dashboard.conftest import MailSink, SmtpServer
from tests.dashboard.images import png
from tests.statements.corpus import read
from tests.support.axe import assert_accessible
from tests.support.browser import assert_no_page_errors, page_errors
from tests.support.browser_plugin import MakePage
from tests.support.live_server import LiveServer
from tests.support.loopback import PartnerSite, partner_site, serving
from tests.support.postgres import free_port

PHONE_WIDTH = 360
OWNER = "owner@example.com"
OWNER_PASSWORD = "lighthouse keepers count the waves"
VIEWER = "viewer@example.com"
VIEWER_PASSWORD = "a viewer reads quietly at noon"
LINK = re.compile(r"https?://\S+/dashboard/invite/[A-Za-z0-9_-]+")


@dataclass
class Team:
    """What the tests learn along the way, shared in file order."""

    server: LiveServer
    smtp: SmtpServer
    creds: dict[str, str]
    seeds: dict[str, str] = field(default_factory=dict)
    last_step: dict[str, int] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)
    #: the app the owner created in the browser: client_id, service_secret
    app: dict[str, str] = field(default_factory=dict)
    #: the sandbox login connected through the connect page (its callback payload)
    login: dict[str, Any] = field(default_factory=dict)

    def code(self, email: str) -> str:
        """A code for a step this member has not used yet (waits for the next step if needed)."""
        step = max(int(time.time()) // totp.STEP_SECONDS, self.last_step.get(email, -1) + 1)
        while step > int(time.time()) // totp.STEP_SECONDS + 1:
            time.sleep(0.5)  # a real server's clock: the only way to a fresh step
        self.last_step[email] = step
        return pyotp.TOTP(self.seeds[email]).at(step * totp.STEP_SECONDS)

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    from aiosmtpd.controller import Controller

    sink = MailSink()
    port = free_port("127.0.0.1")
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    data = tmp_path_factory.mktemp("dashboard") / "data"
    # a re-authentication window longer than the module: the gate has its own tests
    server = LiveServer.start(data_dir=data, env={"BANKHUB_DASHBOARD_REAUTH_SECONDS": "3600"})
    try:
        yield Team(server, SmtpServer("127.0.0.1", port, sink), server.demo_credentials())
    finally:
        server.stop()
        controller.stop()


def _as(make_page: MakePage, team: Team, who: str, **options: Any) -> Page:
    return make_page(storage_state=team.states[who], **options)


def _api(team: Team, secret: str) -> tuple[int, str]:
    answer = httpx.get(
        team.url("/v2/app"),
        headers={"client-id": team.creds["client_id"], "service-secret": secret},
        timeout=10,
    )
    return answer.status_code, (answer.json().get("error", "") if answer.status_code >= 400 else "")


def _heading(page: Page, text: str | re.Pattern[str]) -> None:
    expect(page.get_by_role("heading", name=text, exact=False)).to_be_visible()


def _notice(page: Page) -> str:
    return page.locator(".notice").inner_text()


def _shot(page: Page, name: str, *, full_page: bool = True) -> None:
    """A screenshot for a person to look at, only where ``BANKHUB_SHOTS`` names a folder (a
    test writes nothing outside the repository by default; the API reference is too long a
    page for a whole one: there, what the window shows)."""
    folder = os.environ.get("BANKHUB_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)


# --- the tests, in order -------------------------------------------------------------------------


def test_first_owner_signs_up_and_enrols(make_page: MakePage, team: Team) -> None:
    page = make_page()
    page.goto(team.url("/dashboard"))
    assert page.url.endswith("/dashboard/sign-in")
    page.get_by_role("link", name="Create the team's owner").click()
    _heading(page, "Create the team's owner")
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password", exact=True).fill(OWNER_PASSWORD)
    page.get_by_label("Password again").fill(OWNER_PASSWORD)
    page.get_by_role("button", name="Create owner").click()
    _heading(page, "Set up two-factor sign-in")
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    team.seeds[OWNER] = page.locator("#manual-key").inner_text().strip()
    page.get_by_label("The 6-digit code the app shows now").fill(team.code(OWNER))
    page.get_by_role("button", name="Confirm").click()
    _heading(page, "Your recovery codes")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name="I have saved them: continue").click()
    _heading(page, "Overview")
    expect(page.get_by_text(f"{OWNER} · owner")).to_be_visible()
    team.states[OWNER] = page.context.storage_state()
    assert_no_page_errors(page)
    # sign-up is closed now
    page.goto(team.url("/dashboard/sign-up"))
    assert page.url.endswith("/dashboard")


def test_sign_in_with_password_and_code_then_sign_out(make_page: MakePage, team: Team) -> None:
    page = make_page()
    page.goto(team.url("/dashboard/sign-in"))
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password").fill(OWNER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    _heading(page, "Your code")
    page.get_by_label(re.compile("6-digit code")).fill(team.code(OWNER))
    page.get_by_role("button", name="Sign in").click()
    _heading(page, "Overview")
    page.get_by_role("button", name="Sign out").click()
    _heading(page, "Sign in")
    page.goto(team.url("/dashboard/apps"))
    assert page.url.endswith("/dashboard/sign-in")
    assert_no_page_errors(page)


def test_invite_by_mail_and_a_viewer_cannot_roll_a_key(make_page: MakePage, team: Team) -> None:
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url("/dashboard/smtp"))
    owner.get_by_label("Server").fill(team.smtp.host)
    owner.get_by_label("Port").fill(str(team.smtp.port))
    owner.get_by_label("Security").select_option("none")
    owner.get_by_label("Sender address").fill("hub@example.com")
    owner.get_by_role("button", name="Save").click()
    expect(owner.get_by_text("The mail settings were saved.")).to_be_visible()
    owner.get_by_role("button", name="Send test message").click()
    expect(owner.get_by_text(f"A test message was sent to {OWNER}")).to_be_visible()
    owner.goto(team.url("/dashboard/team"))
    owner.get_by_label("Email").fill(VIEWER)
    owner.get_by_label("Role").select_option("viewer")
    owner.get_by_role("button", name="Invite").click()
    expect(owner.get_by_text(f"The invitation was mailed to {VIEWER}.")).to_be_visible()
    assert_no_page_errors(owner)
    # a reload shows the page again and invites nobody again (post, redirect, get)
    sent = len(team.smtp.messages)
    owner.reload()
    expect(owner.get_by_text("This invitation was shown once already")).to_be_visible()
    assert len(team.smtp.messages) == sent
    _no_errors_but(owner, 410)

    mailed = team.smtp.messages[-1]
    assert mailed["To"] == VIEWER
    body = mailed.get_body(("plain",))
    assert body is not None
    link = LINK.search(body.get_content())
    assert link is not None

    viewer = make_page()
    viewer.goto(link.group(0))
    _heading(viewer, "Join the team")
    viewer.get_by_label("Choose a password").fill(VIEWER_PASSWORD)
    viewer.get_by_label("Password again").fill(VIEWER_PASSWORD)
    viewer.get_by_role("button", name="Continue").click()
    _heading(viewer, "Set up two-factor sign-in")
    team.seeds[VIEWER] = viewer.locator("#manual-key").inner_text().strip()
    viewer.get_by_label("The 6-digit code the app shows now").fill(team.code(VIEWER))
    viewer.get_by_role("button", name="Confirm").click()
    _heading(viewer, "Your recovery codes")
    viewer.get_by_role("link", name="I have saved them: continue").click()
    expect(viewer.get_by_text(f"{VIEWER} · viewer")).to_be_visible()
    team.states[VIEWER] = viewer.context.storage_state()

    viewer.goto(team.url(f"/dashboard/apps/{team.creds['client_id']}"))
    _heading(viewer, "Demo app")
    expect(viewer.get_by_role("button", name="Roll")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Revoke")).to_have_count(0)
    assert_no_page_errors(viewer)
    key_id = viewer.locator("tr[data-key]").first.get_attribute("data-key")
    csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")
    assert key_id
    assert csrf
    forged = viewer.request.post(
        team.url(f"/dashboard/apps/{team.creds['client_id']}/keys/{key_id}/roll"),
        form={"csrf": csrf, "overlap": "0"},
        headers={"origin": team.server.url},
    )
    assert forged.status == 403
    assert _api(team, team.creds["service_secret"]) == (200, "")


def test_roll_and_revoke_then_the_api_refuses_the_old_keys(make_page: MakePage, team: Team) -> None:
    page = _as(make_page, team, OWNER)
    page.goto(team.url(f"/dashboard/apps/{team.creds['client_id']}"))
    first = page.locator("tr[data-key]").first
    first.get_by_label("Old key keeps working for").select_option("0")
    first.get_by_role("button", name="Roll").click()
    # no overlap: a confirmation says the old key stops at once, and nothing happened yet
    _heading(page, re.compile("with no overlap"))
    assert _api(team, team.creds["service_secret"]) == (200, "")
    page.get_by_role("button", name="Roll now, stop the old key").click()
    _heading(page, re.compile("rolled"))
    new_secret = page.locator("code.secret").first.inner_text().strip()
    new_key = page.locator(".secrets dt").first.inner_text().split(" ", 1)[0]
    assert _api(team, team.creds["service_secret"]) == (401, "KeyRevoked")
    assert _api(team, new_secret) == (200, "")
    page.get_by_role("link", name="Back to Demo app").click()
    # the app's only live master key cannot be revoked
    page.locator(f'tr[data-key="{new_key}"]').get_by_role("link", name="Revoke").click()
    expect(page.get_by_text("last live master key")).to_be_visible()
    assert _api(team, new_secret) == (200, "")
    page.get_by_label("Scope").select_option("master")
    page.get_by_role("button", name="Create key").click()
    _heading(page, "New master key")
    second = page.locator("code.secret").first.inner_text().strip()
    page.get_by_role("link", name="Back to Demo app").click()
    page.locator(f'tr[data-key="{new_key}"]').get_by_role("link", name="Revoke").click()
    expect(page.locator("#consequences")).to_contain_text("cannot be undone")
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("The key was revoked")).to_be_visible()
    assert _api(team, new_secret) == (401, "KeyRevoked")
    assert _api(team, second) == (200, "")
    _no_errors_but(page, 409)


def _no_errors_but(page: Page, status: int) -> None:
    """No console or page error, but the one the browser logs for a page answered ``status``
    on purpose (the 409 of a refused revocation, the 410 of secrets already shown)."""
    left = [e for e in page_errors(page).all if f"status of {status}" not in e]
    assert not left, left


class _AttackerHandler(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><html lang=en><title>Win a prize</title>"
            f'<form method="post" action="{self.target}">'
            '<input type="hidden" name="csrf" value="guess">'
            '<input type="hidden" name="overlap" value="0">'
            "<button>Claim</button></form>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_a_cross_site_form_post_is_refused(make_page: MakePage, team: Team) -> None:
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url(f"/dashboard/apps/{team.creds['client_id']}"))
    key_id = owner.locator("tr[data-key]", has=owner.get_by_role("button", name="Roll")).first
    target_key = key_id.get_attribute("data-key")
    assert target_key
    _AttackerHandler.target = team.url(
        f"/dashboard/apps/{team.creds['client_id']}/keys/{target_key}/roll"
    )
    with serving(_AttackerHandler, lifetime=300) as origin:
        # another origin (localhost, another port) in the owner's own browser
        owner.goto(origin.replace("127.0.0.1", "localhost", 1) + "/")
        with owner.expect_navigation() as navigation:
            owner.get_by_role("button", name="Claim").click()
        response = navigation.value
        assert response is not None
        assert response.status == 403
        expect(owner.get_by_text("Cross-site form submission refused.")).to_be_visible()
    page = _as(make_page, team, OWNER)
    page.goto(team.url(f"/dashboard/apps/{team.creds['client_id']}"))
    row = page.locator(f'tr[data-key="{target_key}"]')
    expect(row.get_by_role("button", name="Roll")).to_have_count(1)  # still live, not rolled


def test_five_wrong_codes_block_sign_in(make_page: MakePage, team: Team) -> None:
    page = make_page()
    page.goto(team.url("/dashboard/sign-in"))
    page.get_by_label("Email").fill(VIEWER)
    page.get_by_label("Password").fill(VIEWER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    for _ in range(5):
        _heading(page, re.compile("Your code|Sign in"))
        page.get_by_label(re.compile("6-digit code")).fill("000000")
        page.get_by_role("button", name="Sign in").click()
        assert _notice(page) == services.REFUSED
    _heading(page, "Sign in")  # the half-done session was ended
    page.get_by_label("Password").fill(VIEWER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    assert _notice(page) == services.REFUSED  # blocked, with the very same message
    assert page.url.endswith("/dashboard/sign-in")
    assert_no_page_errors(page)


# --- a partner's site on loopback: the connect callback and the webhook receiver -----------------


@pytest.fixture(scope="module")
def partner() -> Iterator[PartnerSite]:
    with partner_site(lifetime=3600) as site:
        yield site


def _until(check: Any, what: str, *, seconds: float = 20.0) -> None:
    """Poll a condition of the live server's background work, bounded in time."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.2)


def _partner_api(team: Team, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {
        "client-id": team.app["client_id"],
        "service-secret": team.app["service_secret"],
        **kwargs.pop("headers", {}),
    }
    return httpx.request(method, team.url(path), headers=headers, timeout=10, **kwargs)


def _connect_link(team: Team, partner: PartnerSite, identifier: str) -> str:
    customer = _partner_api(team, "POST", "/v2/customer", json={"identifier": identifier})
    assert customer.status_code == 200, customer.text
    token = _partner_api(
        team,
        "POST",
        "/v2/token",
        json={
            "customer_id": customer.json()["data"]["customer_id"],
            "service_id": 1,
            "callback_url": f"{partner.origin}/v2",
        },
    )
    assert token.status_code == 200, token.text
    link: str = token.json()["data"]["connect_url"]
    return link


def test_webhook_endpoint_gets_real_deliveries_shown_in_the_log_and_a_replay(
    make_page: MakePage, team: Team, partner: PartnerSite
) -> None:
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url("/dashboard/apps"))
    owner.get_by_label("Name").fill("Browser app")
    owner.get_by_role("button", name="Create").click()
    _heading(owner, "App created")
    shown = owner.locator("code.secret").all_inner_texts()
    team.app = {"client_id": shown[0].strip(), "service_secret": shown[1].strip()}
    client_id = team.app["client_id"]

    owner.goto(team.url(f"/dashboard/apps/{client_id}/webhooks"))
    owner.get_by_label("URL").fill(f"{partner.origin}/hooks")
    owner.get_by_role("button", name="Add endpoint").click()
    expect(owner.locator("#signing-secret")).to_be_visible()
    shown_at = owner.url
    owner.get_by_role("link", name="Back to Browser app's webhooks").click()
    expect(owner.locator("tr[data-endpoint]")).to_have_count(1)
    # shown once: coming back to it shows nothing again and adds no second endpoint
    owner.goto(shown_at)
    expect(owner.locator("#already-shown")).to_be_visible()
    owner.goto(team.url(f"/dashboard/apps/{client_id}/webhooks"))
    expect(owner.locator("tr[data-endpoint]")).to_have_count(1)

    # a real sandbox connect, through the connect page in the browser
    user = make_page()
    user.goto(_connect_link(team, partner, "browser-customer"))
    user.get_by_role("button", name="I agree, continue").click()
    user.get_by_label("Username").fill("user_good")
    user.get_by_label("Password").fill("pass_good")
    user.get_by_role("button", name="Log in").click()
    user.wait_for_url(re.compile(re.escape(partner.origin) + "/v2/"), timeout=30_000)
    team.login = json.loads(unquote(urlsplit(user.url).path.rsplit("/", 1)[-1]))
    assert team.login["status"] == "success", team.login
    assert_no_page_errors(user)

    _until(lambda: partner.hooks, "a webhook at the partner's endpoint")
    first_id = partner.hooks[0].webhook_id
    assert first_id.startswith("evt_")

    def logged() -> bool:
        owner.reload()
        return owner.locator(".status-delivered").count() > 0

    _until(logged, "a delivered event in the delivery log")
    event = owner.locator(f'section.event[data-event="{first_id.removeprefix("evt_")}"]')
    expect(event.locator(".status-delivered")).to_be_visible()
    expect(event.locator(".attempts li").first).to_contain_text("HTTP 200")
    event.get_by_role("button", name="Replay").click()
    _until(
        lambda: [hook.webhook_id for hook in partner.hooks].count(first_id) >= 2,
        "the replayed event at the partner's endpoint",
    )
    _no_errors_but(owner, 410)  # the secrets page, visited again on purpose


def test_the_request_log_finds_a_partners_call_by_its_request_id(
    make_page: MakePage, team: Team
) -> None:
    client_id = team.app["client_id"]
    sent = _partner_api(
        team,
        "GET",
        "/v2/account?login_secret=browser-secret-query",
        headers={"X-Request-Id": "browser-trace-1"},
    )
    assert sent.status_code >= 400, sent.text
    code = sent.json()["error"]
    assert sent.headers["x-request-id"] == "browser-trace-1"
    owner = _as(make_page, team, OWNER)
    path = f"/dashboard/apps/{client_id}/requests"

    def recorded() -> bool:  # the server writes its request log every few seconds
        owner.goto(team.url(path))
        return owner.locator('tr[data-request="browser-trace-1"]').count() == 1

    _until(recorded, "the partner's call in the request log")
    owner.get_by_label("Request id").fill("browser-trace-1")
    owner.get_by_role("button", name="Search").click()
    row = owner.locator("table.requests tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("GET /v2/account")
    expect(row).to_contain_text(str(sent.status_code))
    expect(row).to_contain_text(code)
    assert "browser-secret-query" not in owner.content()
    _shot(owner, "requests-desktop")
    assert_no_page_errors(owner)

    phone = _as(make_page, team, OWNER, phone=True)
    phone.goto(team.url(f"{path}?status={sent.status_code}"))
    expect(phone.locator('tr[data-request="browser-trace-1"]')).to_be_visible()
    _fits(phone)
    _shot(phone, "requests-phone")
    assert_no_page_errors(phone)


def test_the_login_page_tells_the_logins_story_and_refreshes_it(
    make_page: MakePage, team: Team
) -> None:
    client_id, login_id = team.app["client_id"], team.login["login_id"]
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url(f"/dashboard/apps/{client_id}/customers"))
    owner.get_by_role("link", name=f"Login {login_id}").click()
    _heading(owner, f"Login {login_id} at ")
    expect(owner.locator("#login-status")).to_contain_text("login_active")
    expect(owner.locator("tr[data-account]").first).to_be_visible()
    expect(owner.locator("table.sent tr[data-delivery]").first).to_be_visible()
    # the connect's first sync is the login's first run; the tests before may have run more
    runs = owner.locator("table.runs tr[data-run]")
    expect(runs.first).to_be_visible()
    before = runs.count()
    owner.get_by_role("button", name="Refresh now").click()
    expect(owner.get_by_text("The login was refreshed.")).to_be_visible()
    expect(owner.locator("table.runs tr[data-run]")).to_have_count(before + 1)
    expect(owner.locator("table.runs tr[data-run]").first).to_contain_text("ok")  # newest first
    _shot(owner, "login-desktop")
    owner.get_by_role("button", name="Refresh now").click()  # within the cool-down
    expect(owner.locator(".notice")).to_contain_text("can be refreshed again at")
    expect(owner.locator("table.runs tr[data-run]")).to_have_count(before + 1)
    assert_no_page_errors(owner)

    phone = _as(make_page, team, OWNER, phone=True)
    phone.goto(team.url(f"/dashboard/apps/{client_id}/logins/{login_id}"))
    expect(phone.get_by_role("button", name="Refresh now")).to_be_visible()
    _fits(phone)
    _shot(phone, "login-phone")
    assert_no_page_errors(phone)


def test_webhook_endpoint_tools_and_a_signed_test_event(
    make_page: MakePage, team: Team, partner: PartnerSite
) -> None:
    client_id = team.app["client_id"]
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url(f"/dashboard/apps/{client_id}/webhooks"))
    # a second endpoint on the partner's site, whose secret we keep to check the signature
    owner.locator("#hook-url").fill(f"{partner.origin}/tests")
    owner.get_by_role("button", name="Add endpoint").click()
    secret = owner.locator("#signing-secret").inner_text().strip()
    owner.get_by_role("link", name=re.compile("^Back to .*'s webhooks$")).click()
    row = owner.locator("tr[data-endpoint]").filter(has_text="/tests")
    endpoint_id = row.get_attribute("data-endpoint")
    assert endpoint_id
    expect(row.locator(".endpoint-id")).to_have_text(endpoint_id)

    row.get_by_role("button", name="Send test event").click()
    expect(owner.get_by_text("A test event was queued")).to_be_visible()
    _until(lambda: any(h.path == "/tests" for h in partner.hooks), "the test event at the partner")
    hook = next(h for h in partner.hooks if h.path == "/tests")
    assert hook.json()["event_type"] == "webhook.test"
    assert hook.json()["test"] is True
    assert hook.headers["bankhub-event"] == "webhook.test"
    expected = signing.sign(
        secret, hook.webhook_id, int(hook.headers["webhook-timestamp"]), hook.body
    )
    assert expected in hook.headers["webhook-signature"].split(" ")

    def delivered() -> bool:
        owner.goto(team.url(f"/dashboard/apps/{client_id}/webhooks?type=webhook.test#log"))
        return owner.locator("section.event .status-delivered").count() == 1

    _until(delivered, "the test event delivered in the log")
    event = owner.locator("section.event")
    expect(event).to_have_count(1)
    expect(event.locator(".tag")).to_have_text("test")
    event.get_by_text("Payload sent").click()
    expect(event.locator("details.payload pre")).to_contain_text('"test": true')
    event.get_by_text("Response").click()
    expect(event.locator("details.answer")).to_contain_text("HTTP 200 in")
    _shot(owner, "webhooks-desktop")

    # edit it to one event type, disable it, enable it, delete it
    owner.goto(team.url(f"/dashboard/apps/{client_id}/webhooks"))
    row = owner.locator(f'tr[data-endpoint="{endpoint_id}"]')
    row.get_by_text("Edit").click()
    row.get_by_label("URL").fill(f"{partner.origin}/tests-v2")
    row.get_by_label("login.deleted").check()
    row.get_by_role("button", name="Save endpoint").click()
    expect(owner.get_by_text("The endpoint was changed.")).to_be_visible()
    row = owner.locator(f'tr[data-endpoint="{endpoint_id}"]')
    expect(row).to_contain_text("/tests-v2")
    expect(row).to_contain_text("login.deleted")
    row.get_by_role("button", name="Disable").click()
    row = owner.locator(f'tr[data-endpoint="{endpoint_id}"]')
    expect(row.locator(".status-disabled")).to_be_visible()
    row.get_by_role("button", name="Re-enable and send what it missed").click()
    row = owner.locator(f'tr[data-endpoint="{endpoint_id}"]')
    expect(row).to_contain_text("enabled")
    expect(row.get_by_role("button", name="Disable")).to_be_visible()
    row.get_by_role("button", name="Delete endpoint").click()
    expect(owner.get_by_text("The endpoint and its deliveries were deleted.")).to_be_visible()
    expect(owner.locator(f'tr[data-endpoint="{endpoint_id}"]')).to_have_count(0)
    assert_no_page_errors(owner)

    phone = _as(make_page, team, OWNER, phone=True)
    phone.goto(team.url(f"/dashboard/apps/{client_id}/webhooks"))
    expect(phone.locator(".endpoint-id").first).to_be_visible()
    _fits(phone)
    _shot(phone, "webhooks-phone")
    assert_no_page_errors(phone)


def test_charts_render_the_apps_activity(make_page: MakePage, team: Team) -> None:
    page = _as(make_page, team, OWNER)
    path = f"/dashboard?period=24h&app={team.app['client_id']}"

    def counted() -> bool:  # the server writes its usage counts every few seconds
        page.goto(team.url(path))
        return _column_total(page, "connects", "connected") >= 1

    _until(counted, "the connect in the overview's chart")
    expect(page.locator("svg.bankhub-chart")).to_have_count(5)
    for chart in ("calls", "connects", "logins", "transactions", "webhooks"):
        svg = page.locator(f"#{chart} svg")
        box = svg.bounding_box()
        assert box is not None
        assert box["width"] > 200, chart
        assert page.locator(f"#{chart} table tbody tr").count() == 24, chart
    # the table's rows are the data: one connect (the one still open is not counted yet)
    assert _column_total(page, "connects", "connected") == 1
    assert _column_total(page, "connects", "total") == 1
    assert _column_total(page, "webhooks", "delivered") >= 2  # a delivery and its replay
    assert _column_total(page, "transactions", "total") > 0
    # ... and the chart draws them: one bar for the one connect, in the hour of the table's row
    marks = page.locator("#connects svg rect title").all_text_contents()
    assert len(marks) == 1, marks
    hour = page.locator("#connects table tbody tr").evaluate_all(
        "rows => rows.filter(r => r.lastElementChild.textContent.trim() === '1')"
        ".map(r => r.firstElementChild.textContent)"
    )
    assert marks[0] == f"Connected, {hour[0]} UTC: 1", (marks, hour)
    page.locator("#connects summary").click()
    expect(page.locator("#connects table")).to_be_visible()
    assert_no_page_errors(page)


def _column_total(page: Page, chart: str, column: str) -> int:
    """The sum of one column (by its header, any case) of a chart's data table; 0 if none."""
    headers = [
        h.strip().lower() for h in page.locator(f"#{chart} table thead th").all_text_contents()
    ]
    if column not in headers:
        return 0
    index = headers.index(column)
    cells = page.locator(f"#{chart} table tbody tr").evaluate_all(
        f"rows => rows.map(r => r.children[{index}].textContent)"
    )
    return sum(int(str(c).replace(",", "").strip() or 0) for c in cells)


def test_a_login_revoked_in_consent_control_is_refused_by_the_api(
    make_page: MakePage, team: Team
) -> None:
    secret = team.login["secret"]
    assert (
        _partner_api(team, "GET", "/v2/login", headers={"login-secret": secret}).status_code == 200
    )
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url(f"/dashboard/apps/{team.app['client_id']}/customers"))
    row = owner.locator(f'tr[data-login="{team.login["login_id"]}"]')
    expect(row).to_contain_text("active")
    row.get_by_role("link", name="Revoke login").click()
    expect(owner.locator("#consequences")).to_contain_text("erased")
    assert (
        _partner_api(team, "GET", "/v2/login", headers={"login-secret": secret}).status_code == 200
    )
    owner.get_by_role("button", name="Revoke login and erase its data").click()
    expect(owner.get_by_text("The login was revoked")).to_be_visible()
    expect(owner.locator(f'tr[data-login="{team.login["login_id"]}"]')).to_have_count(0)
    refused = _partner_api(team, "GET", "/v2/login", headers={"login-secret": secret})
    assert refused.status_code in (401, 404), refused.text
    assert refused.json()["error"] in ("LoginNotFound", "CredentialInvalid")
    assert_no_page_errors(owner)


def test_branding_change_is_visible_on_the_connect_page(
    make_page: MakePage, team: Team, partner: PartnerSite
) -> None:
    client_id = team.app["client_id"]
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url(f"/dashboard/apps/{client_id}/template"))
    owner.get_by_label(re.compile("Name shown to end users")).fill("Acme Budget")
    owner.get_by_label(re.compile("^Logo")).set_input_files(
        {"name": "logo.png", "mimeType": "image/png", "buffer": png(120, 40)}
    )
    owner.get_by_label(re.compile("Primary colour")).fill("#c0392b")
    owner.get_by_label(re.compile("Secondary colour")).fill("#102030")
    owner.get_by_label(re.compile("Welcome text")).fill("Welcome to Acme <b>Budget</b>!")
    owner.get_by_label(re.compile("Footer text")).fill("Acme Ltd, 1 Main Street")
    owner.get_by_role("button", name="Save branding").click()
    expect(owner.get_by_text("The connect page's branding was saved.")).to_be_visible()
    preview = owner.locator("#preview")
    expect(preview.locator(".app-name")).to_have_text("Acme Budget")
    # the image loads after the page: wait for it rather than read it half-way
    expect(owner.locator("#preview-logo")).to_have_js_property("naturalWidth", 120)
    button = preview.locator(".preview-button")
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(192, 57, 43)"
    assert_no_page_errors(owner)

    user = make_page(phone=True)
    user.goto(_connect_link(team, partner, "branded-customer"))
    expect(user.locator(".app-bar .app-name")).to_have_text("Acme Budget")
    expect(
        user.get_by_role("heading", name="Acme Budget asks to read your bank data")
    ).to_be_visible()
    expect(user.locator(".welcome")).to_have_text("Welcome to Acme <b>Budget</b>!")
    expect(user.locator(".app-footer")).to_have_text("Acme Ltd, 1 Main Street")
    logo = user.locator(".app-logo")
    expect(logo).to_have_js_property("complete", True)
    expect(logo).to_have_js_property("naturalWidth", 120)
    agree = user.get_by_role("button", name="I agree, continue")
    assert agree.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(192, 57, 43)"
    assert agree.evaluate("b => getComputedStyle(b).color") == "rgb(255, 255, 255)"
    bar = user.locator(".app-bar")
    assert bar.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(16, 32, 48)"
    assert user.locator("[style]").count() == 0
    _fits(user)
    assert_no_page_errors(user)  # a CSP refusal would be a console error


#: one charset parameter, as a browser and every HTTP library read it
HTML = "text/html; charset=utf-8"


def test_every_page_fits_360px_without_console_errors(make_page: MakePage, team: Team) -> None:
    anonymous = make_page(phone=True)
    for path in ("/dashboard/sign-in",):
        answer = anonymous.goto(team.url(path))
        assert answer is not None
        assert answer.headers["content-type"] == HTML, path
        _fits(anonymous)
    page = _as(make_page, team, OWNER, phone=True)
    client_id = team.creds["client_id"]
    for path in (
        "/dashboard",
        "/dashboard/apps",
        f"/dashboard/apps/{client_id}",
        f"/dashboard/apps/{client_id}/webhooks",
        f"/dashboard/apps/{client_id}/signatures",
        f"/dashboard/apps/{client_id}/customers",
        "/dashboard/team",
        "/dashboard/smtp",
        "/dashboard/audit",
        "/dashboard/api",
        f"/dashboard/reauth?next=/dashboard/apps/{client_id}",
        f"/dashboard/apps/{client_id}/template",
        f"/dashboard/apps/{client_id}/oauth",
        "/dashboard/apps?show=archived",
        f"/dashboard/apps/{client_id}/archive",
        f"/dashboard/apps/{client_id}/requests",
        "/dashboard?period=7d",
        "/dashboard?period=30d",
        f"/dashboard/apps/{team.app.get('client_id', client_id)}/template",
    ):
        response = page.goto(team.url(path))
        assert response is not None
        assert response.status == 200, path
        assert response.headers["content-type"] == HTML, path
        _fits(page)
    assert_no_page_errors(anonymous)
    assert_no_page_errors(page)


def _fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert isinstance(width, int)
    assert width <= PHONE_WIDTH, f"{page.url} scrolls sideways: {width}px > {PHONE_WIDTH}px"


# --- paged lists, the audit table, dark mode, recovery codes on a phone, the team ---------------

DEV = "dev@example.com"
DEV_PASSWORD = "a developer walks the long pier"
DEV_NEW_PASSWORD = "cormorants dry their wings at noon"
LONG = "a-rather-long-address-kept-whole-in-the-audit-log@example.com"
CODE = re.compile(r"^[a-z2-7]{5}-[a-z2-7]{5}$")


def _luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+(?:\.\d+)?", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _background(page: Page, selector: str) -> str:
    """The first opaque background colour at or above the element."""
    found: str = page.locator(selector).first.evaluate(
        """e => { for (; e; e = e.parentElement) {
            const c = getComputedStyle(e).backgroundColor;
            if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; }
            return 'rgb(255, 255, 255)'; }"""
    )
    return found


def _mailed_link(message: Any) -> re.Match[str] | None:
    body = message.get_body(("plain",))
    assert body is not None
    return LINK.search(body.get_content())


def test_lists_page_past_their_first_page(make_page: MakePage, team: Team) -> None:
    """Consent Control showed 200 customers at most, and nothing said more were hidden."""
    with httpx.Client(timeout=10) as client:
        for n in range(205):
            made = client.post(
                team.url("/v2/customer"),
                json={"identifier": f"paged-{n:03}"},
                headers={
                    "client-id": team.app["client_id"],
                    "service-secret": team.app["service_secret"],
                },
            )
            assert made.status_code == 200, made.text
    path = f"/dashboard/apps/{team.app['client_id']}/customers"
    desk = _as(make_page, team, OWNER)
    desk.goto(team.url(path))
    total = int(desk.locator("#pager-count").inner_text().split(" of ")[1].split()[0])
    assert total >= 205
    expect(desk.locator("#pager-count")).to_contain_text(f"50 shown of {total} customers")
    seen: list[str] = []
    for _ in range(10):
        seen += desk.locator("section[data-customer]").evaluate_all(
            "s => s.map(e => e.dataset.customer)"
        )
        following = desk.get_by_role("link", name="Next page")
        if following.count() == 0:
            break
        following.click()
    assert len(seen) == total == len(set(seen))
    desk.get_by_role("link", name="Previous page").click()
    expect(desk.locator("section[data-customer]")).to_have_count(50)
    _shot(desk, "customers-desktop")
    for name in ("webhooks", "payments"):
        desk.goto(team.url(f"/dashboard/apps/{team.app['client_id']}/{name}?size=25"))
        expect(desk.locator("#pager-count")).to_be_visible()
        _shot(desk, f"{name}-paged-desktop")
    assert_no_page_errors(desk)

    phone = _as(make_page, team, OWNER, phone=True)
    phone.goto(team.url(path))
    phone.get_by_label("Rows per page").select_option("200")
    phone.get_by_role("button", name="Show").click()
    expect(phone.locator("section[data-customer]")).to_have_count(200)
    _fits(phone)
    phone.get_by_role("link", name="Next page").click()
    expect(phone.locator("section[data-customer]")).to_have_count(total - 200)
    expect(phone.get_by_role("link", name="First page")).to_be_visible()
    _fits(phone)
    _shot(phone, "customers-phone")
    assert_no_page_errors(phone)


def test_the_audit_table_reads_at_1440px_and_on_a_phone(make_page: MakePage, team: Team) -> None:
    owner = _as(make_page, team, OWNER, viewport={"width": 1440, "height": 900})
    owner.goto(team.url("/dashboard/team"))
    owner.get_by_label("Email").fill(LONG)
    owner.get_by_label("Role").select_option("viewer")
    owner.get_by_role("button", name="Invite").click()
    expect(owner.get_by_text(f"The invitation was mailed to {LONG}.")).to_be_visible()
    owner.goto(team.url("/dashboard/audit"))
    table = owner.locator("#audit-log")
    width = owner.evaluate("document.documentElement.scrollWidth")
    assert width <= 1440, f"the page scrolls sideways at 1440 px: {width}"
    box = table.bounding_box()
    assert box is not None
    assert box["width"] >= 1200, box  # the width there is, not a 1,024 px column
    assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    for header in table.locator("thead th").all():
        cell = header.bounding_box()
        assert cell is not None
        assert cell["x"] + cell["width"] <= 1440, header.inner_text()
        assert cell["width"] >= 80, header.inner_text()
    # an action breaks only after its dots: each of its words stays on one line
    split = table.locator("td.action").evaluate_all(
        """tds => tds.flatMap(td => [...td.childNodes]
            .filter(n => n.nodeType === Node.TEXT_NODE)
            .filter(n => { const r = document.createRange(); r.selectNodeContents(n);
                           return r.getClientRects().length > 1; })
            .map(n => n.textContent))"""
    )
    assert not split, split
    row = table.locator("tr[data-action='member.invited']").first
    detail = row.locator("details.detail")
    expect(detail.locator("summary")).to_contain_text("…")
    assert (row.bounding_box() or {"height": 999})["height"] < 90  # one glance, not a wall
    expect(detail.locator("pre")).to_be_hidden()
    detail.locator("summary").click()
    expect(detail.locator("pre")).to_contain_text(LONG)
    _shot(owner, "audit-1440")
    assert_no_page_errors(owner)

    phone = _as(make_page, team, OWNER, phone=True)
    phone.goto(team.url("/dashboard/audit?size=25"))
    _fits(phone)
    first = phone.locator("#audit-log tbody tr").first
    expect(first.locator("td[data-label='Action']")).to_be_visible()
    assert "Action" in first.locator("td[data-label='Action']").evaluate(
        "td => getComputedStyle(td, '::before').content"
    )
    phone.get_by_role("link", name="Next page").click()
    expect(phone.get_by_role("link", name="Previous page")).to_be_visible()
    _fits(phone)
    _shot(phone, "audit-phone")
    assert_no_page_errors(phone)


def test_dark_mode_is_readable_charts_included(make_page: MakePage, team: Team) -> None:
    client_id = team.app["client_id"]
    pages = (
        ("overview", f"/dashboard?period=24h&app={client_id}"),
        ("audit", "/dashboard/audit"),
        ("team", "/dashboard/team"),
        ("customers", f"/dashboard/apps/{client_id}/customers"),
        ("account", "/dashboard/account"),
    )
    for phone in (False, True):
        page = _as(make_page, team, OWNER, phone=phone, color_scheme="dark")
        for name, path in pages:
            page.goto(team.url(path))
            ground = _background(page, "main")
            assert _luminance(ground) < 0.05, f"{name}: not dark ({ground})"
            ink = page.locator("h1").evaluate("e => getComputedStyle(e).color")
            assert _contrast(ink, ground) >= 4.5, name
            field = page.locator("select, input[type=text], input[type=email]").first
            if field.count():
                border = field.evaluate("e => getComputedStyle(e).borderTopColor")
                assert _contrast(border, _background(page, "main")) >= 3, (name, border)
            assert_accessible(page, f"{name} in dark mode (phone={phone})")
            if phone:
                _fits(page)
            _shot(page, f"{name}-dark-{'phone' if phone else 'desktop'}")
        page.goto(team.url(pages[0][1]))
        behind = _background(page, "#connects svg")
        for text in page.locator("#connects svg text").all()[:6]:
            fill = text.evaluate("t => getComputedStyle(t).fill")
            assert _contrast(fill, behind) >= 4.5, (fill, behind)
        assert_no_page_errors(page)
    light = _as(make_page, team, OWNER, color_scheme="light")
    for name, path in pages[1:]:
        light.goto(team.url(path))
        assert_accessible(light, f"{name} in light mode")
    light.goto(team.url("/dashboard/team"))
    border = light.get_by_label("Email").evaluate("e => getComputedStyle(e).borderTopColor")
    assert _contrast(border, _background(light, "main")) >= 3
    assert_no_page_errors(light)


def test_team_roles_invitations_password_and_recovery_in_the_browser(
    make_page: MakePage, team: Team
) -> None:
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url("/dashboard/team"))
    for email in (DEV, "gone@example.com"):
        owner.get_by_label("Email").fill(email)
        owner.get_by_label("Role").select_option("developer")
        owner.get_by_role("button", name="Invite").click()
        expect(owner.get_by_text(f"The invitation was mailed to {email}.")).to_be_visible()
    first_link = _mailed_link(team.smtp.messages[-1])
    assert first_link is not None
    gone = owner.locator("li[data-invite]", has_text="gone@example.com")
    gone.get_by_role("button", name=re.compile("^Send again")).click()
    expect(owner.get_by_text("A new invitation was mailed")).to_be_visible()
    second_link = _mailed_link(team.smtp.messages[-1])
    assert second_link is not None
    assert second_link.group(0) != first_link.group(0)
    owner.locator("li[data-invite]", has_text="gone@example.com").get_by_role(
        "button", name=re.compile("^Revoke")
    ).click()
    expect(owner.get_by_text("The invitation was revoked")).to_be_visible()
    _shot(owner, "team-desktop")
    stranger = make_page()
    for link in (first_link.group(0), second_link.group(0)):
        answer = stranger.goto(link)
        assert answer is not None
        assert answer.status == 404, link

    # the developer joins on a phone: a tap adds the account to the authenticator app
    dev_mail = next(m for m in reversed(team.smtp.messages) if m["To"] == DEV)
    dev_link = _mailed_link(dev_mail)
    assert dev_link is not None
    phone = make_page(phone=True)
    phone.goto(dev_link.group(0))
    phone.get_by_label("Choose a password").fill(DEV_PASSWORD)
    phone.get_by_label("Password again").fill(DEV_PASSWORD)
    phone.get_by_role("button", name="Continue").click()
    _heading(phone, "Set up two-factor sign-in")
    team.seeds[DEV] = phone.locator("#manual-key").inner_text().strip()
    tap = phone.get_by_role("link", name="add the account to your authenticator app")
    href = tap.get_attribute("href") or ""
    assert href.startswith("otpauth://totp/bankhub%3Adev%40example.com?"), href
    assert f"secret={team.seeds[DEV]}" in href
    assert "issuer=bankhub" in href
    _fits(phone)
    _shot(phone, "enrol-phone")
    phone.get_by_label("The 6-digit code the app shows now").fill(team.code(DEV))
    phone.get_by_role("button", name="Confirm").click()
    codes = [c.strip() for c in phone.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) == 10
    assert all(CODE.match(c) for c in codes)
    assert_no_page_errors(phone)

    # the owner makes them an admin
    owner.goto(team.url("/dashboard/team"))
    row = owner.locator(f'tr[data-email="{DEV}"]')
    row.get_by_label(f"Change {DEV} to").select_option("admin")
    row.get_by_role("button", name="Change role").click()
    expect(owner.get_by_text("The member's role was changed")).to_be_visible()
    expect(owner.locator(f'tr[data-email="{DEV}"] select')).to_have_value("admin")
    assert_no_page_errors(owner)

    # on the phone, a recovery code typed on a text keyboard, with capitals and a space
    signed_out = make_page(phone=True)
    signed_out.goto(team.url("/dashboard/sign-in"))
    signed_out.get_by_label("Email").fill(DEV)
    signed_out.get_by_label("Password").fill(DEV_PASSWORD)
    signed_out.get_by_role("button", name="Continue").click()
    field = signed_out.get_by_label(re.compile("or a recovery code"))
    assert field.evaluate("e => e.inputMode") in ("", "text"), "a numeric keypad has no letters"
    _shot(signed_out, "sign-in-code-phone")
    field.press_sequentially(codes[0].upper().replace("-", " "))
    signed_out.get_by_role("button", name="Sign in").click()
    _heading(signed_out, "Overview")
    expect(signed_out.get_by_text(f"{DEV} · admin")).to_be_visible()

    # on a desk: a new password signs the phone out
    desk = make_page()
    desk.goto(team.url("/dashboard/sign-in"))
    desk.get_by_label("Email").fill(DEV)
    desk.get_by_label("Password").fill(DEV_PASSWORD)
    desk.get_by_role("button", name="Continue").click()
    desk.get_by_label(re.compile("or a recovery code")).fill(codes[1])
    desk.get_by_role("button", name="Sign in").click()
    desk.get_by_role("link", name=f"{DEV} · admin").click()
    _heading(desk, "Your account")
    expect(desk.locator("#codes-left")).to_have_text("You have 8 unused recovery codes.")
    desk.get_by_label("Current password").fill(DEV_PASSWORD)
    desk.get_by_label("New password", exact=True).fill(DEV_NEW_PASSWORD)
    desk.get_by_label("New password again").fill(DEV_NEW_PASSWORD)
    desk.get_by_role("button", name="Change password").click()
    expect(desk.get_by_text("Your password was changed")).to_be_visible()
    _shot(desk, "account-desktop")
    signed_out.reload()
    _heading(signed_out, "Sign in")

    # new recovery codes: the old ones stop working
    desk.get_by_label("The 6-digit code your authenticator app shows now").fill(team.code(DEV))
    desk.get_by_role("button", name="Make new recovery codes").click()
    expect(desk.get_by_text("These new codes replace your earlier ones")).to_be_visible()
    renewed = [c.strip() for c in desk.locator("#recovery-codes li").all_inner_texts()]
    assert len(renewed) == 10
    assert not set(renewed) & set(codes)
    _shot(desk, "recovery-codes-renewed")
    assert_no_page_errors(desk)
    # a reload shows them no more and makes no other set (post, redirect, get): those shown work
    assert "/dashboard/account/recovery-codes/" in desk.url
    desk.reload()
    expect(desk.get_by_text("These recovery codes were shown once already")).to_be_visible()
    expect(desk.locator("#recovery-codes li")).to_have_count(0)
    _no_errors_but(desk, 410)

    # the phone is lost: a recovery code, then a new authenticator
    lost = make_page(phone=True)
    lost.goto(team.url("/dashboard/sign-in"))
    lost.get_by_label("Email").fill(DEV)
    lost.get_by_label("Password").fill(DEV_NEW_PASSWORD)
    lost.get_by_role("button", name="Continue").click()
    lost.get_by_role("link", name=re.compile("Lost your authenticator app")).click()
    _heading(lost, "Lost your authenticator app?")
    _shot(lost, "recover-phone")
    lost.get_by_label("Recovery code").fill(codes[2])
    lost.get_by_role("button", name="Continue").click()
    assert _notice(lost) == services.REFUSED  # an old code: replaced above
    lost.get_by_label("Recovery code").fill(renewed[0])
    lost.get_by_role("button", name="Continue").click()
    _heading(lost, "Set up two-factor sign-in")
    expect(lost.locator("#reset-note")).to_be_visible()
    new_seed = lost.locator("#manual-key").inner_text().strip()
    assert new_seed != team.seeds[DEV]
    _shot(lost, "enrol-reset-phone")
    team.seeds[f"{DEV} (new)"] = new_seed
    lost.get_by_label("The 6-digit code the app shows now").fill(team.code(f"{DEV} (new)"))
    lost.get_by_role("button", name="Confirm").click()
    expect(lost.locator("#recovery-codes li")).to_have_count(10)
    lost.get_by_role("link", name="I have saved them: continue").click()
    _heading(lost, "Overview")
    _fits(lost)
    assert_no_page_errors(lost)
    desk.goto(team.url("/dashboard"))
    _heading(desk, "Sign in")  # the reset signed every other session out


# --- secrets shown once, apps archived, confirmations, re-authentication, field errors ----------


def _app_rows(page: Page, team: Team) -> int:
    page.goto(team.url("/dashboard/apps?show=all"))
    return page.locator("tr[data-app]").count()


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_secrets_are_shown_once_and_a_reload_creates_nothing(
    make_page: MakePage, team: Team, phone: bool
) -> None:
    page = _as(make_page, team, OWNER, phone=phone)
    before = _app_rows(page, team)
    page.goto(team.url("/dashboard/apps"))
    page.get_by_label("Name").fill(f"Once app {'phone' if phone else 'desk'}")
    page.get_by_role("button", name="Create").click()
    _heading(page, "App created")
    assert "/dashboard/shown/" in page.url
    shown = page.locator("code.secret").all_inner_texts()
    assert len(shown) == 3
    assert all(secret not in page.url for secret in shown)
    _shot(page, f"secret-shown-{'phone' if phone else 'desktop'}")
    if phone:
        _fits(page)
    answer = page.reload()
    assert answer is not None
    assert answer.status == 410
    assert answer.headers["cache-control"] == "no-store"
    expect(page.locator("#already-shown")).to_contain_text("already shown")
    expect(page.locator("code.secret")).to_have_count(0)
    _shot(page, f"secret-already-shown-{'phone' if phone else 'desktop'}")
    page.go_back()  # the apps page the form was on: nothing is posted again
    assert _app_rows(page, team) == before + 1
    if phone:
        _fits(page)
    _no_errors_but(page, 410)


def test_an_archived_app_is_refused_hidden_and_restored(make_page: MakePage, team: Team) -> None:
    client_id = team.app["client_id"]
    assert _partner_api(team, "GET", "/v2/app").status_code == 200
    phone = _as(make_page, team, OWNER, phone=True)
    phone.goto(team.url(f"/dashboard/apps/{client_id}"))
    phone.get_by_role("link", name="Archive app…").click()
    expect(phone.locator("#consequences")).to_contain_text("AppArchived")
    _shot(phone, "archive-confirm-phone")
    _fits(phone)
    phone.get_by_role("button", name="Archive app").click()
    expect(phone.locator("#archived")).to_contain_text("This app is archived")
    _shot(phone, "app-archived-phone")
    _fits(phone)
    refused = _partner_api(team, "GET", "/v2/app")
    assert refused.status_code == 403
    assert refused.json()["error"] == "AppArchived"

    desk = _as(make_page, team, OWNER)
    desk.goto(team.url("/dashboard/apps"))
    expect(desk.locator(f'tr[data-app="{client_id}"]')).to_have_count(0)
    desk.get_by_role("link", name=re.compile(r"Archived \(\d+\)")).click()
    expect(desk.locator(f'tr[data-app="{client_id}"]')).to_contain_text("archived")
    _shot(desk, "apps-archived-filter-desktop")
    desk.locator(f'tr[data-app="{client_id}"]').get_by_role("link").click()
    desk.get_by_role("button", name="Restore app").click()
    expect(desk.get_by_text("The app was restored")).to_be_visible()
    assert _partner_api(team, "GET", "/v2/app").status_code == 200
    assert_no_page_errors(desk)
    assert_no_page_errors(phone)


def _stale_reauthentication(team: Team) -> None:
    """The owner's last password and code are older than the window (as an injected clock
    would have it): the server forgets when they were given."""
    with sqlite3.connect(team.server.data_dir / "bankhub.sqlite3") as db:
        db.execute("UPDATE member_sessions SET reauth_at = NULL")


def test_erasing_a_customer_is_confirmed_then_carried_out_after_reauthentication(
    make_page: MakePage, team: Team
) -> None:
    made = _partner_api(team, "POST", "/v2/customer", json={"identifier": "to-be-erased"})
    assert made.status_code == 200, made.text
    customer_id = made.json()["data"]["customer_id"]
    _stale_reauthentication(team)
    page = _as(make_page, team, OWNER, phone=True)
    page.goto(team.url(f"/dashboard/apps/{team.app['client_id']}/customers?q=to-be-erased"))
    page.get_by_role("link", name="Erase customer and all their data").click()
    _heading(page, "Erase customer to-be-erased?")
    _shot(page, "erase-confirm-phone")
    _fits(page)
    page.get_by_role("button", name="Erase customer and all their data").click()
    _heading(page, "Confirm it is you")
    expect(page.locator("#waiting")).to_contain_text("the erasure you confirmed")
    _shot(page, "reauth-pending-phone")
    _fits(page)
    assert _customer(team, customer_id) == 200  # nothing happened yet
    page.get_by_label("Password").fill(OWNER_PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(team.code(OWNER))
    page.get_by_role("button", name="Confirm").click()
    # carried out, without asking again
    expect(
        page.get_by_text("The customer and everything fetched for them were erased.")
    ).to_be_visible()
    assert _customer(team, customer_id) == 404
    assert_no_page_errors(page)


def _customer(team: Team, customer_id: str) -> int:
    return _partner_api(
        team, "GET", "/v2/customer/export", params={"customer_id": customer_id}
    ).status_code


def test_removing_a_member_and_revoking_a_grant_are_confirmed(
    make_page: MakePage, team: Team
) -> None:
    page = _as(make_page, team, OWNER)
    page.goto(team.url("/dashboard/team"))
    page.locator(f'tr[data-email="{VIEWER}"]').get_by_role("link", name="Remove").click()
    _heading(page, f"Remove {VIEWER}?")
    expect(page.locator("#consequences")).to_contain_text("every session they have ends")
    _shot(page, "remove-member-confirm-desktop")
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator(f'tr[data-email="{VIEWER}"]')).to_have_count(1)
    page.locator(f'tr[data-email="{VIEWER}"]').get_by_role("link", name="Remove").click()
    page.get_by_role("button", name="Remove member").click()
    expect(page.get_by_text("The member was removed")).to_be_visible()
    expect(page.locator(f'tr[data-email="{VIEWER}"]')).to_have_count(0)

    token = httpx.post(
        team.url("/oauth/token"),
        data={"grant_type": "client_credentials"},
        auth=(team.app["client_id"], team.app["service_secret"]),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    bearer = {"authorization": f"Bearer {token.json()['access_token']}"}
    assert httpx.get(team.url("/v2/app"), headers=bearer, timeout=10).status_code == 200
    phone = _as(make_page, team, OWNER, phone=True)
    phone.goto(team.url(f"/dashboard/apps/{team.app['client_id']}/oauth"))
    phone.get_by_role("link", name="Revoke grant").first.click()
    expect(phone.locator("#consequences")).to_contain_text("InvalidToken")
    _shot(phone, "revoke-grant-confirm-phone")
    _fits(phone)
    phone.get_by_role("button", name="Revoke grant").click()
    expect(phone.get_by_text("The grant was revoked")).to_be_visible()
    assert httpx.get(team.url("/v2/app"), headers=bearer, timeout=10).status_code == 401
    assert_no_page_errors(page)
    assert_no_page_errors(phone)


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_forms_keep_their_input_and_show_the_error_at_the_field(
    make_page: MakePage, team: Team, phone: bool
) -> None:
    page = _as(make_page, team, OWNER, phone=phone)
    where = "phone" if phone else "desktop"
    page.goto(team.url("/dashboard/apps"))
    name = page.get_by_label("Name")
    name.fill("   ")
    page.get_by_role("button", name="Create").click()
    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description(re.compile("Name the app"))
    _shot(page, f"field-error-app-name-{where}")

    page.goto(team.url(f"/dashboard/apps/{team.app['client_id']}/webhooks"))
    # the form that adds one (each endpoint listed has its own edit form with the same fields)
    adding = page.locator("form", has=page.locator("#hook-url"))
    adding.get_by_label("URL").fill("ftp://example.com/hooks")
    adding.get_by_label("login.status", exact=True).check()
    adding.get_by_role("button", name="Add endpoint").click()
    adding = page.locator("form", has=page.locator("#hook-url"))
    url = adding.get_by_label("URL")
    expect(url).to_have_value("ftp://example.com/hooks")
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(adding.get_by_label("login.status", exact=True)).to_be_checked()
    _shot(page, f"field-error-webhook-url-{where}")

    page.goto(team.url("/dashboard/team"))
    page.get_by_label("Email").fill(OWNER)  # a valid address the server refuses
    page.get_by_label("Role").select_option("admin")
    page.get_by_role("button", name="Invite").click()
    email = page.get_by_label("Email")
    expect(email).to_have_value(OWNER)
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(re.compile("already a member"))
    expect(page.get_by_label("Role")).to_have_value("admin")
    _shot(page, f"field-error-invite-{where}")
    if phone:
        _fits(page)


# --- the Bank Feed and the API reference ----------------------------------------------------------


def test_the_bank_feed_connects_a_test_bank_and_follows_new_runs_live(
    make_page: MakePage, team: Team
) -> None:
    owner = _as(make_page, team, OWNER)
    client_id = team.app["client_id"]
    owner.goto(team.url(f"/dashboard/apps/{client_id}"))
    owner.get_by_role("link", name="Bank Feed").click()
    _heading(owner, "Bank Feed: Browser app")
    expect(owner.locator("#sandbox-users")).to_contain_text("user_good")
    expect(owner.locator("#sandbox-secrets")).to_contain_text("pass_good")

    # the real connect page, from the dashboard, and back to the new login and its accounts
    owner.get_by_role("button", name="Connect a test bank").click()
    owner.get_by_role("button", name="I agree, continue").click()
    owner.get_by_label("Username").fill("user_good")
    owner.get_by_label("Password").fill("pass_good")
    owner.get_by_role("button", name="Log in").click()
    owner.wait_for_url(re.compile(r"/feed\?login=\d+"), timeout=30_000)
    _heading(owner, "Connected: login")
    expect(owner.locator("#tested tr[data-account]")).to_have_count(3)
    rows = owner.locator("#feed tbody tr")
    expect(rows.first).to_contain_text("connect page")
    expect(rows.first).to_contain_text("dashboard-test-bank")
    before = rows.count()
    _shot(owner, "feed-desktop-connected")

    # a statement file over the API while the page is open: it shows up without a reload
    owner.evaluate("window.stillTheSamePage = true")
    customer = _partner_api(team, "POST", "/v2/customer", json={"identifier": "feed-live"})
    assert customer.status_code == 200, customer.text
    uploaded = _partner_api(
        team,
        "POST",
        "/v2/statement",
        data={"customer_id": customer.json()["data"]["customer_id"]},
        files={"file": ("live.ofx", read("ofx/bank_medium.ofx"), "application/octet-stream")},
    )
    assert uploaded.status_code == 200, uploaded.text
    expect(rows).to_have_count(before + 1, timeout=20_000)
    expect(rows.first).to_contain_text("statement upload (API)")
    expect(rows.first).to_contain_text("live.ofx")
    expect(rows.first.locator("td.num").first).to_have_text("3")
    expect(owner.locator("#feed-live")).to_have_text("1 new run.")
    assert owner.evaluate("window.stillTheSamePage") is True
    _shot(owner, "feed-desktop-live")
    assert_no_page_errors(owner)


def test_the_api_reference_shows_body_fields_examples_and_the_oauth_endpoints(
    make_page: MakePage, team: Team
) -> None:
    page = _as(make_page, team, OWNER)
    page.goto(team.url("/dashboard/api"))
    page.get_by_role("link", name="POST /oauth/token").click()
    token = page.locator("section#post--oauth-token")
    expect(token.locator('tr[data-field="grant_type"]')).to_contain_text("client_credentials")
    token.get_by_text("Example request").click()
    expect(token.locator("pre.curl")).to_contain_text(
        "--data-urlencode 'grant_type=client_credentials'"
    )
    customer = page.locator("section#post--v2-customer")
    expect(customer.locator('tr[data-field="identifier"]')).to_contain_text("yes")
    customer.get_by_text("Example request").click()
    expect(customer.locator("pre.curl")).to_contain_text("-H 'service-secret: <service-secret>'")
    customer.get_by_text("Example answer").click()
    expect(customer.locator("pre.answer")).to_contain_text('"data"')
    customer.scroll_into_view_if_needed()
    _shot(page, "api-desktop", full_page=False)
    assert_no_page_errors(page)


def test_the_bank_feed_and_the_api_reference_on_a_phone(make_page: MakePage, team: Team) -> None:
    page = _as(make_page, team, OWNER, phone=True)
    page.goto(team.url(f"/dashboard/apps/{team.app['client_id']}/feed"))
    _heading(page, "Bank Feed")
    expect(page.get_by_role("button", name="Connect a test bank")).to_be_visible()
    expect(page.locator("#sandbox-users")).to_be_visible()
    expect(page.locator("#feed tbody tr").first).to_contain_text("statement upload (API)")
    _fits(page)
    _shot(page, "feed-phone")
    page.goto(team.url("/dashboard/api#post--v2-token"))
    section = page.locator("section#post--v2-token")
    expect(section.locator('tr[data-field="locale"]')).to_be_visible()
    section.get_by_text("Example request").click()
    expect(section.locator("pre.curl")).to_contain_text("<client-id>")
    _fits(page)
    section.scroll_into_view_if_needed()
    _shot(page, "api-phone", full_page=False)
    assert_no_page_errors(page)
