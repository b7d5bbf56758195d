"""The embedded mode: ``bankhub serve`` alone delivers webhooks, signed, soon after the commit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.http_connect import connect_over_http
from tests.support.server_plugin import LiveServerFactory

CALLBACK = "http://localhost:2000/v2"


class Hooks(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HookHandler)
        self.received: list[tuple[dict[str, str], bytes, float]] = []


class HookHandler(BaseHTTPRequestHandler):
    server: Hooks

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.received.append((dict(self.headers.items()), body, time.monotonic()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """No request log on stderr."""


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_serve_delivers_webhooks_by_itself(
    live_server: LiveServerFactory, hooks: Hooks, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env.update(BANKHUB_DATA_DIR=str(data_dir), BANKHUB_ENV="test")
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "bankhub",
            "apps",
            "create",
            "Hooked app",
            "--json",
            "--webhook-url",
            f"http://127.0.0.1:{hooks.server_port}/hooks",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    app = json.loads(created.stdout)
    assert set(app) == {
        "client_id",
        "service_secret",
        "app_secret",
        "webhook_endpoint_id",
        "webhook_secret",
    }
    assert app["webhook_secret"].startswith("whsec_")

    server = live_server(data_dir=data_dir)
    headers = {"client-id": app["client_id"], "service-secret": app["service_secret"]}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as api:
        customer = api.post("/v2/customer", json={"identifier": "hooked"}).json()["data"]
        token = api.post(
            "/v2/token",
            json={
                "customer_id": customer["customer_id"],
                "service_id": 1,
                "callback_url": CALLBACK,
            },
        ).json()["data"]
        result = connect_over_http(token["connect_url"], server.url, CALLBACK)
        committed = time.monotonic()
        deadline = committed + 10
        while not hooks.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hooks.received, "no webhook arrived within 10 s"
        request_headers, body, arrived = hooks.received[0]
        payload = Webhook(app["webhook_secret"]).verify(body, request_headers)
        assert payload["login_id"] == result["login_id"]
        assert payload["new"] > 0
        # woken by the commit, not by a poll: well under the one-second poll interval
        assert arrived - committed < 1.0
        events = api.get("/v2/event").json()["data"]
        assert request_headers["webhook-id"] == f"evt_{events[0]['id']}"
