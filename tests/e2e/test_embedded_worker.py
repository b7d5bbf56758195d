"""The embedded mode: ``bankhub serve`` alone delivers webhooks, signed, soon after the commit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.http_connect import connect_over_http
from tests.support.loopback import PartnerSite, partner_site
from tests.support.server_plugin import LiveServerFactory

CALLBACK = "http://localhost:2000/v2"


@pytest.fixture
def hooks() -> Iterator[PartnerSite]:
    with partner_site() as site:
        yield site


def test_serve_delivers_webhooks_by_itself(
    live_server: LiveServerFactory, hooks: PartnerSite, tmp_path: Path
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
            f"{hooks.origin}/hooks",
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
        while not hooks.hooks and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hooks.hooks, "no webhook arrived within 10 s"
        hook = hooks.hooks[0]
        payload = Webhook(app["webhook_secret"]).verify(hook.body, hook.headers)
        assert payload["login_id"] == result["login_id"]
        assert payload["new"] > 0
        # woken by the commit, not by a poll: well under the one-second poll interval
        assert hook.arrived - committed < 1.0
        events = api.get("/v2/event").json()["data"]
        assert hook.webhook_id == f"evt_{events[0]['id']}"
