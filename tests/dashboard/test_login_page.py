"""A login's page in the dashboard: status, consent, accounts, refreshes and their outcomes,
status changes and errors, webhooks sent for it, reached from Consent Control; its refresh
button is ``PUT /v2/login/refresh``'s service, cool-down included, for the roles that build."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from sqlalchemy import func, select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard.roles import Role
from bankhub.partners.models import App
from bankhub.sync.models import SyncRun
from bankhub.webhooks import services as webhooks
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]


async def _runs(h: Harness) -> int:
    async with h.hub.db.transaction() as db:
        return int((await db.execute(select(func.count(SyncRun.id)))).scalar_one())


async def test_the_login_page_shows_its_story_and_refreshes_within_the_limits(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    async with h.hub.db.transaction() as db:
        app = (
            await db.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        await webhooks.create_endpoint(
            db, h.hub.keyring, h.clock(), app.id, "http://127.0.0.1:9/hooks", allow_http=True
        )
    login = await connect(h)
    login_id = login["login_id"]
    v = visitors()
    await v.sign_in(await make_member(h, Role.DEVELOPER))
    client_id = h.creds["client_id"]
    customers = await v.get(f"/dashboard/apps/{client_id}/customers")
    path = f"/dashboard/apps/{client_id}/logins/{login_id}"
    assert f'href="{path}"' in customers.text
    page = await v.get(path)
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert f"Login {login_id} at " in text
    assert "login_active" in text
    assert "Consent expires" in text
    assert text.count("data-account=") >= 1
    # the connect's first sync is the login's first run (the Bank Feed's line too)
    assert text.count("data-run=") == 1
    assert '<table class="sent' in text
    assert text.count("<tr data-delivery=") >= 1  # the connect's events, queued for the hook
    # each delivery with the time it was queued (a replay is another delivery of the event)
    assert re.search(
        r'<tr data-delivery=[^\n]*<span class="help">queued \d\d:\d\d:\d\d</span>', text
    )

    async with h.hub.db.transaction() as db:
        reads = list(
            (
                await db.execute(select(AuditEntry).where(AuditEntry.action == "account_data.read"))
            ).scalars()
        )
    viewed = [e for e in reads if e.actor == "member:developer@example.com"]
    assert len(viewed) == 1  # S42: the page shows account data, so each view is recorded
    assert viewed[0].target_id == str(login_id)
    assert viewed[0].detail["account_ids"]

    before = await _runs(h)
    refreshed = await v.post(f"{path}/refresh")
    assert refreshed.status_code == 303, refreshed.text
    assert refreshed.headers["location"] == f"{path}?done=refreshed"
    assert await _runs(h) == before + 1
    after = html.unescape((await v.get(refreshed.headers["location"])).text)
    assert "The login was refreshed." in after
    assert after.count("data-run=") == 2

    again = await v.post(f"{path}/refresh")  # inside the cool-down: refused, nothing runs
    assert again.status_code == 200
    assert "Not refreshed: this login can be refreshed again at" in html.unescape(again.text)
    assert await _runs(h) == before + 1
    h.clock.advance(seconds=h.hub.settings.refresh_cooldown_seconds + 1)
    await v.get(path)
    assert (await v.post(f"{path}/refresh")).status_code == 303
    assert await _runs(h) == before + 2
    async with h.hub.db.transaction() as db:
        actors = (
            await db.execute(select(AuditEntry.actor).where(AuditEntry.action == "login.refreshed"))
        ).scalars()
        assert list(actors) == ["member:developer@example.com"] * 2


async def test_a_viewer_reads_the_login_but_cannot_refresh_it(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    login = await connect(h)
    v = visitors()
    await v.sign_in(await make_member(h, Role.VIEWER))
    path = f"/dashboard/apps/{h.creds['client_id']}/logins/{login['login_id']}"
    page = await v.get(path)
    assert page.status_code == 200
    assert "Refresh now" not in page.text
    before = await _runs(h)
    assert (await v.post(f"{path}/refresh")).status_code == 403
    assert await _runs(h) == before
    other = await h.new_app()
    foreign = await v.get(f"/dashboard/apps/{other['client_id']}/logins/{login['login_id']}")
    assert foreign.status_code == 404
