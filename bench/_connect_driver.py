"""A real ``bankhub serve`` for the benchmarks, and a user clicking through its connect page.

Shared by ``bench/connect.py`` (which times each step) and ``bench/webhooks.py`` (which only needs
a connected login). Plain HTTP over loopback, as a browser without JavaScript would.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from bench.harness import Context, free_port, server

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CALLBACK = "http://localhost:2000/v2"
SESSION_PAGE = "/v2/connect/session"


@dataclass
class Served:
    """A running ``bankhub serve`` and one partner app's credentials."""

    base: str
    creds: dict[str, str]
    process: subprocess.Popen[bytes]

    def headers(self, login_secret: str | None = None) -> dict[str, str]:
        headers = {
            "client-id": self.creds["client_id"],
            "service-secret": self.creds["service_secret"],
            "content-type": "application/json",
        }
        if login_secret is not None:
            headers["login-secret"] = login_secret
        return headers


def create_app(ctx: Context, env: dict[str, str], webhook_url: str | None = None) -> dict[str, str]:
    """``bankhub apps create`` on the configured database; its secrets (and webhook's)."""
    command = [ctx.python(), "-m", "bankhub", "apps", "create", "bench", "--json"]
    if webhook_url is not None:
        command += ["--webhook-url", webhook_url]
    done = subprocess.run(command, env=env, capture_output=True, check=True)  # noqa: S603
    created: dict[str, str] = json.loads(done.stdout)
    return created


@contextmanager
def serve(
    ctx: Context, data_dir: Path, *, webhook_url: str | None = None, **settings: str
) -> Iterator[Served]:
    """``bankhub serve`` on SQLite in ``data_dir`` (embedded worker on), with a fresh app."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = ctx.env(
        BANKHUB_DATA_DIR=str(data_dir),
        BANKHUB_CREATE_DEMO_APP="false",
        BANKHUB_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **settings,
    )
    creds = create_app(ctx, env, webhook_url)
    command = [ctx.python(), "-m", "bankhub", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with server(command, env, port) as process:
        yield Served(f"http://127.0.0.1:{port}", creds, process)


def parse_callback(location: str) -> dict[str, Any]:
    last = urlsplit(location).path.rsplit("/", 1)[-1]
    result: dict[str, Any] = json.loads(unquote(last))
    return result


def new_connect_url(client: httpx.Client, served: Served, identifier: str) -> str:
    """A customer and a connect token for the sandbox bank (service 1)."""
    response = client.post(
        "/v2/customer", json={"identifier": identifier}, headers=served.headers()
    )
    response.raise_for_status()
    customer_id = response.json()["data"]["customer_id"]
    response = client.post(
        "/v2/token",
        json={"customer_id": customer_id, "service_id": 1, "callback_url": CALLBACK},
        headers=served.headers(),
    )
    response.raise_for_status()
    url: str = response.json()["data"]["connect_url"]
    return url


@dataclass
class Steps:
    """Client-side times of each connect-page request, in ms, by step name."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, step: str, ms: float) -> None:
        self.times.setdefault(step, []).append(ms)

    def all(self) -> list[float]:
        return [ms for values in self.times.values() for ms in values]


class ConnectUser:
    """One user on the connect page with a cookie jar of its own; every request is timed."""

    def __init__(self, base: str, steps: Steps | None = None) -> None:
        # The driver reads the page's English words; a sandbox bank otherwise speaks its country's.
        self.client = httpx.Client(
            base_url=base,
            follow_redirects=False,
            timeout=30.0,
            headers={"Accept-Language": "en"},
        )
        self.steps = steps or Steps()
        self.page = ""

    def close(self) -> None:
        self.client.close()

    def _timed(
        self, step: str, method: str, url: str, form: dict[str, str] | None = None
    ) -> httpx.Response:
        started = time.perf_counter()
        response = self.client.request(method, url, data=form)
        self.steps.add(step, (time.perf_counter() - started) * 1000)
        return response

    def _csrf(self) -> str:
        match = CSRF.search(self.page)
        if match is None:
            raise RuntimeError(f"no form on the page: {self.page[:500]}")
        return match.group(1)

    def _expect(self, response: httpx.Response, status: int) -> httpx.Response:
        if response.status_code != status:
            raise RuntimeError(f"expected {status}, got {response.status_code}: {response.text}")
        return response

    def _page(self, step: str) -> httpx.Response:
        response = self._timed(step, "GET", SESSION_PAGE)
        self.page = response.text if response.status_code == 200 else ""
        return response

    def connect(self, connect_url: str, username: str, *, poll_every: float) -> dict[str, Any]:
        """The whole flow up to the callback; returns the callback's payload."""
        self._expect(self._timed("open connect_url", "GET", connect_url), 303)
        self._expect(self._page("consent page"), 200)
        form = {"csrf": self._csrf(), "action": "agree"}
        self._expect(self._timed("consent POST", "POST", "/v2/connect/consent", form), 303)
        self._expect(self._page("credentials page"), 200)
        form = {"csrf": self._csrf(), "username": username, "password": "pass_good"}
        self._expect(self._timed("credentials POST", "POST", "/v2/connect/credentials", form), 303)
        step = "first progress page"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = self.client.get(SESSION_PAGE)
            ms = (time.perf_counter() - started) * 1000
            location = response.headers.get("location", "")
            if response.status_code == 303 and location.startswith(CALLBACK):
                self.steps.add("final redirect", ms)
                return parse_callback(location)
            self.steps.add(step, ms)
            if response.status_code != 200 or "Fetching your accounts" not in response.text:
                raise RuntimeError(f"not on the progress page: {response.text[:500]}")
            step = "progress poll"
            time.sleep(poll_every)
        raise RuntimeError("the first fetch did not finish within 60 s")
