"""Consent as an object on every login: what was shared, since and until when; renewed in place."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bankhub.connectors.sandbox import SandboxConnector
from bankhub.logins.models import Login
from bankhub.logins.services import grant_consent
from tests.api.connect_client import connect, reconnect
from tests.conftest import Harness


def wire(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def read(h: Harness, secret: str) -> dict[str, Any]:
    response = await h.client.get("/v2/login", headers=h.headers(login_secret=secret))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_the_login_shows_its_consent(harness: Harness) -> None:
    h = harness
    login = await read(h, (await connect(h, "user_good"))["secret"])
    assert login["consent"] == {
        "scopes": ["accounts", "balances", "transactions"],
        "granted_at": wire(h.clock()),
        "expires_at": wire(h.clock() + timedelta(days=90)),
        "history_days": 5 * 365 + 1,  # the sandbox banks keep five years
    }
    assert login["consent_expires_at"] == login["consent"]["expires_at"]


async def test_a_bank_can_grant_less(harness: Harness) -> None:
    h = harness
    login = await read(h, (await connect(h, "user_consent_short"))["secret"])
    assert login["consent"]["expires_at"] == wire(h.clock() + timedelta(minutes=5))


async def test_reconnect_renews_the_consent_in_place(harness: Harness) -> None:
    h = harness
    first = await connect(h, "user_good")
    h.clock.advance(days=80)
    second = await reconnect(h, first["secret"], "user_good")
    assert second["login_id"] == first["login_id"]
    renewed = await read(h, second["secret"])
    assert renewed["consent"]["granted_at"] == wire(h.clock())
    assert renewed["consent"]["expires_at"] == wire(h.clock() + timedelta(days=90))


def test_no_consent_outlasts_180_days() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    login = Login(consent_expires_at=now + timedelta(days=400))
    generous = replace(SandboxConnector.info, consent_days=365)
    grant_consent(login, generous, now)
    assert login.consent_expires_at == now + timedelta(days=180)
    assert login.consent_granted_at == now
