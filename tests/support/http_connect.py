"""Walking the connect page of a running bankhub with plain HTTP, as a no-JavaScript browser."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def connect_over_http(
    connect_url: str, base_url: str, callback_url: str, username: str = "user_good"
) -> dict[str, Any]:
    """Consent and log in with the sandbox password; the callback's JSON result."""
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        opened = client.get(connect_url, follow_redirects=False, headers={"Accept-Language": "en"})
        assert opened.status_code == 303, opened.text
        assert opened.headers["location"] == "/v2/connect/session"

        def show() -> httpx.Response:
            return client.get("/v2/connect/session", follow_redirects=False)

        def post(path: str, page: httpx.Response, form: dict[str, str]) -> httpx.Response:
            match = CSRF.search(page.text)
            assert match, page.text
            sent = client.post(path, data={"csrf": match.group(1), **form})
            assert sent.status_code == 303, (sent.status_code, sent.text)
            return show()

        page = show()
        assert "asks to read your bank data" in page.text
        page = post("/v2/connect/consent", page, {"action": "agree"})
        assert "Log in to" in page.text
        page = post(
            "/v2/connect/credentials", page, {"username": username, "password": "pass_good"}
        )
        deadline = time.monotonic() + 30
        # the progress pages: the bank still answering the login, then the first fetch
        while page.status_code == 200 and (
            "Fetching your accounts" in page.text or "is taking a moment" in page.text
        ):
            assert time.monotonic() < deadline, "the first fetch did not finish"
            time.sleep(0.05)
            page = show()
        assert page.status_code == 303, page.text
        location = page.headers["location"]
        assert location.startswith(callback_url + "/"), location
        result: dict[str, Any] = json.loads(unquote(urlsplit(location).path.rsplit("/", 1)[-1]))
        return result
