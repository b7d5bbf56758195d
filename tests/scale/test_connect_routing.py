"""Two real ``bankhub serve`` processes on one PostgreSQL: a connect opened on one is answered
on the other, as behind a load balancer without sticky sessions.

``bankhub migrate`` once, then processes A and B (``BANKHUB_EMBEDDED_WORKER=false``, the same
database and secret key; each passes connect requests on to the other at its own address, the
``serve`` default ``BANKHUB_INTERNAL_URL``). The connect link is opened on A; every later step
(consent, credentials, the bank's one-time code, the progress pages, the callback) is sent to
B, which holds no session and passes each to A. Then a second connect opened on A, A stops, and
B says the connection was interrupted, with the way back to the app: not "link expired".
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.connect.models import ConnectRoute
from bankhub.logins.models import Login
from tests.api.connect_client import CSRF, FORM_STEP, WAY_BACK
from tests.scale.support import CALLBACK, SECRET_KEY, bankhub_cli, create_app, database
from tests.support.live_server import LiveServer
from tests.support.server_plugin import LiveServerFactory

PROGRESS = ("Fetching your accounts", "is taking a moment")


def _form(page: str, **fields: str) -> dict[str, str]:
    csrf = CSRF.search(page)
    assert csrf, page[:2000]
    step = FORM_STEP.search(page)
    return {"csrf": csrf.group(1), **({"step": step.group(1)} if step else {}), **fields}


class Browser:
    """One user's browser, its cookie kept across both processes (cookies ignore ports)."""

    def __init__(self) -> None:
        # a browser's language (the sandbox bank's country would otherwise choose the page's)
        self.client = httpx.Client(timeout=30.0, trust_env=False, headers={"Accept-Language": "en"})
        self.page = ""
        self.status = 0
        self.location = ""

    def show(self, server: LiveServer) -> str:
        shown = self.client.get(f"{server.url}/v2/connect/session")
        self.status, self.page = shown.status_code, shown.text
        self.location = shown.headers.get("location", "")
        return self.page

    def post(self, server: LiveServer, path: str, **fields: str) -> str:
        sent = self.client.post(f"{server.url}{path}", data=_form(self.page, **fields))
        assert sent.status_code == 303, (sent.status_code, sent.text[:2000])
        self.show(server)
        deadline = time.monotonic() + 30
        while self.status == 200 and "is taking a moment" in self.page:
            assert time.monotonic() < deadline, "the bank never answered"
            time.sleep(0.05)
            self.show(server)
        return self.page

    def close(self) -> None:
        self.client.close()


def _connect_url(server: LiveServer, creds: dict[str, str], customer: str) -> str:
    headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
    with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as api:
        made = api.post("/v2/customer", json={"identifier": customer}, headers=headers)
        assert made.status_code == 200, made.text
        token = api.post(
            "/v2/token",
            json={
                "customer_id": made.json()["data"]["customer_id"],
                "service_id": 1,
                "callback_url": CALLBACK,
            },
            headers=headers,
        )
        assert token.status_code == 200, token.text
        url: str = token.json()["data"]["connect_url"]
        return url


def _callback(location: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(unquote(urlsplit(location).path.rsplit("/", 1)[-1]))
    return payload


def test_a_connect_opened_on_one_process_is_answered_on_the_other(
    postgres_url: str, live_server: LiveServerFactory, tmp_path: Path
) -> None:
    env = {
        "BANKHUB_DATABASE_URL": postgres_url,
        "BANKHUB_EMBEDDED_WORKER": "false",
        "BANKHUB_DATA_DIR": str(tmp_path / "data"),
    }
    bankhub_cli(["migrate"], env, tmp_path)
    creds = create_app(env, tmp_path, "http://127.0.0.1:9/unused")
    server_env = {**env, "BANKHUB_SECRET_KEY": SECRET_KEY, "BANKHUB_CREATE_DEMO_APP": "false"}
    a, b = live_server(server_env), live_server(server_env)
    db = database(postgres_url)

    browser = Browser()
    try:
        opened = browser.client.get(_connect_url(a, creds, "routed"))
        assert opened.status_code == 303, opened.text  # A holds the session now
        assert "asks to read your bank data" in browser.show(b)
        assert "Log in to" in browser.post(b, "/v2/connect/consent", action="agree")
        page = browser.post(b, "/v2/connect/credentials", username="user_otp", password="pass_good")
        assert 'name="code"' in page, page[:2000]
        browser.post(b, "/v2/connect/answer", code="123456")
        deadline = time.monotonic() + 60
        while not (browser.status == 303 and browser.location.startswith(CALLBACK)):
            assert any(p in browser.page for p in PROGRESS), browser.page[:2000]
            assert time.monotonic() < deadline, "the first fetch did not finish"
            time.sleep(0.05)
            browser.show(b)
        payload = _callback(browser.location)
        assert payload["status"] == "success", payload
    finally:
        browser.close()

    async def facts(session: AsyncSession) -> tuple[int, list[str | None]]:
        logins = await session.scalar(select(func.count(Login.id)))
        owners = (await session.execute(select(ConnectRoute.owner_url))).scalars().all()
        return int(logins or 0), list(owners)

    logins, owners = db(facts)
    assert logins == 1
    assert owners == [a.url]  # A held the session; B only passed its steps on

    # A stops while a connect it opened is under way: B says so, with the way back.
    browser = Browser()
    try:
        assert browser.client.get(_connect_url(a, creds, "interrupted")).status_code == 303
        assert "asks to read your bank data" in browser.show(b)
        assert a.stop() == 0
        page = browser.show(b)
        assert browser.status == 400, page[:2000]
        assert "This connection was interrupted" in page
        assert "expired" not in page
        back = WAY_BACK.search(page)
        assert back, page[:2000]
        outcome = _callback(back.group(1).replace("&amp;", "&"))
        assert outcome["error"] == "TokenExpire"
        assert "stopped" in outcome["message"]
    finally:
        browser.close()
