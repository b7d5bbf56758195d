"""The operator's command line, run in-process against a data dir of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bankhub.cli import cli
from bankhub.config import ConfigError, Environment, Settings
from bankhub.db.engine import Database
from bankhub.errors import DomainError, ErrorCode
from bankhub.events import flags
from tests.support.cli import authenticate


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    return tmp_path


def _authenticates(creds: dict[str, str]) -> bool:
    return authenticate(creds) == creds["client_id"]


def test_apps_create_json_prints_working_secrets_once(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["apps", "create", "Budget app", "--json"])
    assert result.exit_code == 0, result.output
    creds = json.loads(result.stdout)
    assert set(creds) == {"client_id", "service_secret", "app_secret"}
    assert _authenticates(creds)
    database = (data_dir / "bankhub.sqlite3").read_bytes()
    assert creds["service_secret"].encode() not in database
    assert creds["app_secret"].encode() not in database


def test_demo_reissues_the_demo_apps_secrets(data_dir: Path) -> None:
    first = CliRunner().invoke(cli, ["demo"])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, ["demo"])

    def creds(output: str) -> dict[str, str]:
        pairs = dict(
            line.split(": ", 1)
            for line in output.splitlines()
            if line.startswith(("client-id", "service-secret"))
        )
        return {"client_id": pairs["client-id"], "service_secret": pairs["service-secret"]}

    old, new = creds(first.stdout), creds(second.stdout)
    assert old["client_id"] == new["client_id"]
    assert old["service_secret"] != new["service_secret"]
    assert _authenticates(new)
    with pytest.raises(DomainError) as refused:
        _authenticates(old)
    assert refused.value.code == ErrorCode.KEY_REVOKED


def test_maintenance_switch(data_dir: Path) -> None:
    assert CliRunner().invoke(cli, ["maintenance", "on"]).exit_code == 0
    settings = Settings()

    async def read() -> str | None:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                return await flags.get_flag(session, flags.MAINTENANCE)
        finally:
            await db.dispose()

    assert asyncio.run(read()) == "on"
    assert CliRunner().invoke(cli, ["maintenance", "off"]).exit_code == 0
    assert asyncio.run(read()) == "off"
    assert CliRunner().invoke(cli, ["maintenance", "sideways"]).exit_code == 2


def test_production_refuses_to_start_without_a_secret_key(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANKHUB_ENV", "production")
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 2
    assert "BANKHUB_SECRET_KEY" in result.output


def test_production_refuses_a_weak_secret_key(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_production_refuses_a_weak_secret_key — S1: outside dev a guessable server pepper
    (repeated characters, a sequence, a word repeated, a keyboard run) stops start-up with a
    message naming the variable, while random keys of 32 characters pass; dev keeps any key."""
    weak = (
        "test-pepper-" + "x" * 40,
        "a" * 64,
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "changeme-changeme-changeme-changeme",
        "qwertyuiopasdfghjklzxcvbnm1234567890",
        "0123456789" * 4,
    )
    for key in weak:
        with pytest.raises(ConfigError, match="BANKHUB_SECRET_KEY is too easy to guess"):
            Settings(env=Environment.PRODUCTION, secret_key=key).resolved_secret_key()
        assert Settings(env=Environment.DEV, secret_key=key).resolved_secret_key() == key.encode()
    for _ in range(20):
        for key in (secrets.token_urlsafe(24), secrets.token_hex(16), secrets.token_urlsafe(48)):
            assert Settings(env=Environment.PRODUCTION, secret_key=key).resolved_secret_key()

    monkeypatch.setenv("BANKHUB_ENV", "production")
    monkeypatch.setenv("BANKHUB_SECRET_KEY", "production-" + "k" * 40)
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 2
    assert "BANKHUB_SECRET_KEY is too easy to guess" in result.output


def test_apps_create_with_a_webhook_and_rotate_its_secret(data_dir: Path) -> None:
    made = CliRunner().invoke(
        cli,
        [
            "apps",
            "create",
            "Hooked",
            "--json",
            "--webhook-url",
            "http://127.0.0.1:9/hooks",
            "--event",
            "transactions.new",
        ],
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    assert created["webhook_secret"].startswith("whsec_")
    rotated = CliRunner().invoke(
        cli, ["webhooks", "rotate", created["webhook_endpoint_id"], "--json"]
    )
    assert rotated.exit_code == 0, rotated.output
    fresh = json.loads(rotated.stdout)
    assert fresh["webhook_endpoint_id"] == created["webhook_endpoint_id"]
    assert fresh["webhook_secret"].startswith("whsec_")
    assert fresh["webhook_secret"] != created["webhook_secret"]
    database = (data_dir / "bankhub.sqlite3").read_bytes()
    assert fresh["webhook_secret"].encode() not in database  # stored encrypted only
    assert CliRunner().invoke(cli, ["webhooks", "rotate", "no-such-endpoint"]).exit_code == 2


def test_webhooks_list_shows_a_disabled_endpoint_and_enable_queues_what_it_missed(
    data_dir: Path,
) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from bankhub.audit.models import AuditEntry
    from bankhub.db import tenancy
    from bankhub.events import services as events
    from bankhub.webhooks.models import WebhookDelivery, WebhookEndpoint

    made = CliRunner().invoke(
        cli, ["apps", "create", "Hooked", "--json", "--webhook-url", "http://127.0.0.1:9/in"]
    )
    assert made.exit_code == 0, made.output
    endpoint_id = json.loads(made.stdout)["webhook_endpoint_id"]
    now = datetime.now(UTC)

    async def disable_then_record() -> list[int]:
        db = Database(Settings().resolved_database_url())
        try:
            with tenancy.everything():
                async with db.transaction() as session:
                    endpoint = await session.get(WebhookEndpoint, endpoint_id)
                    assert endpoint is not None
                    assert endpoint.events == ["transactions.new", "login.status"]
                    endpoint.disabled_at = now - timedelta(minutes=1)
                    endpoint.disabled_reason = "the endpoint answered 410 Gone"
                    recorded = [
                        await events.record(
                            session, app_id=endpoint.app_id, type=kind, payload=payload, now=now
                        )
                        for kind, payload in (
                            (events.LOGIN_STATUS, events.login_status_payload(1, "success")),
                            (events.SYNC_FAILED, events.sync_failed_payload(1, "x", "m")),
                            (
                                events.NEW_TRANSACTIONS,
                                events.new_transactions_payload(1, now, [2], 3),
                            ),
                        )
                    ]
            # an event's id is given when its unit of work commits (the feed's order)
            return [recorded[0].id, recorded[2].id]
        finally:
            await db.dispose()

    missed = asyncio.run(disable_then_record())
    listed = CliRunner().invoke(cli, ["webhooks", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [hook] = json.loads(listed.stdout)
    assert (hook["id"], hook["enabled"]) == (endpoint_id, False)
    assert hook["disabled_reason"] == "the endpoint answered 410 Gone"
    text = CliRunner().invoke(cli, ["webhooks", "list"])
    assert "disabled since" in text.output
    assert "410 Gone" in text.output

    enabled = CliRunner().invoke(cli, ["webhooks", "enable", endpoint_id, "--json"])
    assert enabled.exit_code == 0, enabled.output
    catch_up = json.loads(enabled.stdout)["catch_up"]
    assert (catch_up["missed"], catch_up["queued"]) == (2, 2)
    assert catch_up["first_event_id"] == missed[0]

    async def read() -> tuple[list[int], list[str]]:
        db = Database(Settings().resolved_database_url())
        try:
            with tenancy.everything():
                async with db.transaction() as session:
                    queued = list(
                        (
                            await session.execute(
                                select(WebhookDelivery.event_id).order_by(WebhookDelivery.id)
                            )
                        ).scalars()
                    )
                    actors = list(
                        (
                            await session.execute(
                                select(AuditEntry.actor).where(
                                    AuditEntry.action == "webhook.endpoint_enabled"
                                )
                            )
                        ).scalars()
                    )
                    return queued, actors
        finally:
            await db.dispose()

    assert asyncio.run(read()) == (missed, ["operator:cli"])
    again = CliRunner().invoke(cli, ["webhooks", "enable", endpoint_id])
    assert again.exit_code == 0
    assert "enabled already" in again.output
    assert json.loads(CliRunner().invoke(cli, ["webhooks", "list", "--json"]).stdout)[0]["enabled"]
    assert CliRunner().invoke(cli, ["webhooks", "enable", "no-such-endpoint"]).exit_code == 2


@pytest.mark.parametrize(
    ("url", "events"),
    [("ftp://example.com/hooks", []), ("http://127.0.0.1/hooks", ["no.such.event"])],
)
def test_apps_create_refuses_a_bad_webhook(data_dir: Path, url: str, events: list[str]) -> None:
    arguments = ["apps", "create", "Bad", "--json", "--webhook-url", url]
    for event in events:
        arguments += ["--event", event]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://localhost/hooks", "localhost resolves to"),
        ("https://[::ffff:127.0.0.1]/hooks", "embeds 127.0.0.1, which is loopback"),
        ("http://93.184.216.34/hooks", "URL scheme must be https"),
    ],
)
def test_apps_create_outside_dev_refuses_a_private_webhook_and_creates_nothing(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, url: str, reason: str
) -> None:
    monkeypatch.setenv("BANKHUB_ENV", "production")
    monkeypatch.setenv("BANKHUB_SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv("BANKHUB_KEK", "q" * 43)
    result = CliRunner().invoke(cli, ["apps", "create", "Hooked", "--json", "--webhook-url", url])
    assert result.exit_code == 2, result.output
    assert "webhook url refused" in result.output
    assert reason in " ".join(result.output.split())  # rich wraps long lines
    with contextlib.closing(sqlite3.connect(data_dir / "bankhub.sqlite3")) as database:
        apps = database.execute("SELECT count(*) FROM apps WHERE name = 'Hooked'").fetchone()
    assert apps == (0,)  # the app was not created either


def test_the_sftp_drop_without_asyncssh_says_which_extra_to_install(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncssh is the optional ``bankhub[sftp]`` extra: without it, ``bankhub sftp`` and a
    ``serve`` with BANKHUB_SFTP_PORT stop with a line that says so, not a traceback."""
    monkeypatch.setitem(sys.modules, "asyncssh", None)  # what a missing package looks like
    monkeypatch.setenv("BANKHUB_SFTP_PORT", "2222")
    for args in (["sftp", "--fingerprint"], ["serve"]):
        done = CliRunner().invoke(cli, args)
        assert done.exit_code == 2, (args, done.output)
        assert "pip install 'bankhub[sftp]'" in " ".join(done.output.split()), done.output
