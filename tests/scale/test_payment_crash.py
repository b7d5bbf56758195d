"""Crash test: ``bankhub serve`` killed (SIGKILL, the whole process) after the bank took a
payment and before bankhub recorded the bank's answer; restarted, it reconciles by asking the
bank. Exactly one payment at the bank, its status right, its webhook sent.

The fault point (``BANKHUB_FAULT_POINT=payment-sent``, :mod:`bankhub.payments.sending`) kills
the server's process group at that very moment; the sandbox bank keeps its record of payments
in a file of its own in the data dir, which outlives the process as a real bank would.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.scale.support import (
    SECRET_KEY,
    HookReceiver,
    Store,
    bankhub_cli,
    connect,
    wait_until,
)
from tests.support.server_plugin import LiveServerFactory

CALLBACK = "http://localhost:2000/v2"
SPARBANK = 3


def _csrf(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_a_kill_between_sending_and_recording_leaves_one_payment_reconciled(
    store: Store, live_server: LiveServerFactory, tmp_path: Path
) -> None:
    receiver = HookReceiver().start()
    try:
        env = {
            **store.env,
            "BANKHUB_SECRET_KEY": SECRET_KEY,
            "BANKHUB_CREATE_DEMO_APP": "false",
            "BANKHUB_CONNECTOR_TIMEOUT_SECONDS": "2",
            "BANKHUB_PAYMENT_SWEEP_SECONDS": "0.5",
            "BANKHUB_WORKER_POLL_SECONDS": "0.1",
        }
        out = bankhub_cli(
            [
                "apps",
                "create",
                "Payments app",
                "--webhook-url",
                receiver.url + "/hook",
                "--event",
                "payment.status",
                "--json",
            ],
            env,
            tmp_path,
        )
        creds: dict[str, str] = json.loads(out.strip().splitlines()[-1])
        receiver.secret = creds["webhook_secret"]
        headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}

        server = live_server(
            {**env, "BANKHUB_FAULT_POINT": "payment-sent"}, data_dir=store.data_dir
        )
        with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as client:
            on = client.put(
                "/v2/payment/settings",
                json={"enabled": True, "chosen_by": "owner"},
                headers=headers,
            )
            assert on.status_code == 200, on.text
            # the payer's bank login first: the partner names the debtor account
            login = connect(server.url, creds, SPARBANK, "user_good", "payer")
            accounts = client.get(
                "/v2/account", headers={**headers, "login-secret": login.secret}
            ).json()["data"]
            customer_id = client.get(
                "/v2/login", headers={**headers, "login-secret": login.secret}
            ).json()["data"]["customer_id"]
            made = client.post(
                "/v2/payment",
                json={
                    "customer_id": customer_id,
                    "service_id": SPARBANK,
                    "callback_url": CALLBACK,
                    "creditor_name": "Creditor",
                    "creditor_iban": "DE89370400440532013000",
                    "amount": "42.00",
                    "currency": "EUR",
                    "account_id": accounts[0]["id"],
                },
                headers={**headers, "idempotency-key": uuid.uuid4().hex},
            )
            assert made.status_code == 200, made.text
            payment_id = made.json()["data"]["id"]
            connect_url = made.json()["data"]["connect_url"]
            assert client.get(connect_url.removeprefix(server.url)).status_code == 303
            page = client.get("/v2/connect/session").text
            client.post("/v2/connect/consent", data={"csrf": _csrf(page), "action": "agree"})
            page = client.get("/v2/connect/session").text
            form = {"csrf": _csrf(page), "username": "user_good", "password": "pass_good"}
            with pytest.raises(httpx.TransportError):
                client.post("/v2/connect/credentials", data=form)
        server.proc.wait(timeout=15)  # killed at the fault point, with its worker
        assert server.proc.returncode is not None
        server.stop()

        bank = store.data_dir / "sandbox-bank-payments.sqlite3"
        with closing(sqlite3.connect(bank)) as db:
            at_bank = db.execute(
                "SELECT bank_id, status FROM payments WHERE request_id = ?", (payment_id,)
            ).fetchall()
        assert len(at_bank) == 1, at_bank
        assert at_bank[0][1] == "executed", at_bank

        restarted = live_server(env, data_dir=store.data_dir)
        seen: dict[str, Any] = {}

        def reconciled() -> bool:
            answer = httpx.get(f"{restarted.url}/v2/payment/{payment_id}", headers=headers)
            seen.update(answer.json()["data"])
            return bool(seen["status"] == "executed")

        wait_until(reconciled, 30.0, "the payment reconciled after the restart")
        assert [h["status"] for h in seen["history"]] == ["pending_authorisation", "executed"]
        events = httpx.get(f"{restarted.url}/v2/event", headers=headers).json()["data"]
        executed = [
            e
            for e in events
            if e["type"] == "payment.status" and e["payload"]["status"] == "executed"
        ]
        assert len(executed) == 1, events
        wait_until(
            lambda: f"evt_{executed[0]['id']}" in receiver.ids(), 30.0, "the webhook delivered"
        )
        assert all(h.verified for h in receiver.hits)
        with closing(sqlite3.connect(bank)) as db:
            assert db.execute("SELECT count(*) FROM payments").fetchone() == (1,)
        assert "never answered: asking the bank" in restarted.stdout_text()
        time.sleep(0)  # the restarted server is stopped by the fixture
    finally:
        receiver.stop()
