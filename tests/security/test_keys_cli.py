"""``bankhub keys``: partner API keys and the data keyring from the operator's command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bankhub.cli import cli


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV", "BANKHUB_KEK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    return tmp_path


def _json(args: list[str]) -> Any:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_api_key_lifecycle(data_dir: Path) -> None:
    """S2: create (secret once), list (never secrets), roll with overlap, revoke."""
    app = _json(["apps", "create", "Ops app", "--json"])
    created = _json(["keys", "create", "--app", app["client_id"], "--scope", "read", "--json"])[0]
    assert created["scope"] == "read"
    assert len(created["secret"]) >= 43
    listed = _json(["keys", "list", "--app", app["client_id"], "--json"])
    assert {k["key_id"] for k in listed} >= {created["key_id"]}
    assert all("secret" not in k for k in listed)
    rolled = _json(["keys", "roll", created["key_id"], "--overlap-hours", "1", "--json"])[0]
    assert rolled["secret"] != created["secret"]
    again = {k["key_id"]: k for k in _json(["keys", "list", "--app", app["client_id"], "--json"])}
    assert again[created["key_id"]]["expires_at"] is not None
    assert again[created["key_id"]]["live"] is True
    revoked = CliRunner().invoke(cli, ["keys", "revoke", created["key_id"]])
    assert revoked.exit_code == 0, revoked.output
    after = {k["key_id"]: k for k in _json(["keys", "list", "--app", app["client_id"], "--json"])}
    assert after[created["key_id"]]["live"] is False
    unknown = CliRunner().invoke(cli, ["keys", "revoke", "key_0000000000000000"])
    assert unknown.exit_code == 2


def test_rotate_rewrap_retire(data_dir: Path) -> None:
    """S21 from the command line: the old key holds values until rewrap, then retires."""
    _json(["apps", "create", "Hooked", "--webhook-url", "http://127.0.0.1:9/hook", "--json"])
    before = {k["kid"]: k for k in _json(["keys", "status", "--json"])}
    assert before["k1"]["state"] == "primary"
    assert before["k1"]["values"] >= 1  # the webhook endpoint's signing secret
    assert CliRunner().invoke(cli, ["keys", "rotate", "--wait", "0"]).exit_code == 0
    refused = CliRunner().invoke(cli, ["keys", "retire", "k1"])
    assert refused.exit_code == 2
    assert "still use" in refused.output
    rewrap = CliRunner().invoke(cli, ["keys", "rewrap"])
    assert rewrap.exit_code == 0, rewrap.output
    status = {k["kid"]: k for k in _json(["keys", "status", "--json"])}
    assert status["k2"]["state"] == "primary"
    assert status["k1"]["values"] == 0
    assert status["k2"]["values"] == before["k1"]["values"]
    assert CliRunner().invoke(cli, ["keys", "retire", "k1"]).exit_code == 0
    assert {k["kid"]: k["state"] for k in _json(["keys", "status", "--json"])}["k1"] == "retired"


def test_an_app_key_cannot_hold_master_scope(data_dir: Path) -> None:
    """S2: `bankhub keys create --kind app --scope master` is refused and creates nothing."""
    app = _json(["apps", "create", "Ops app", "--json"])
    before = _json(["keys", "list", "--app", app["client_id"], "--json"])
    result = CliRunner().invoke(
        cli,
        ["keys", "create", "--app", app["client_id"], "--scope", "master", "--kind", "app"],
    )
    assert result.exit_code == 2, result.output
    assert "write" in result.output
    assert _json(["keys", "list", "--app", app["client_id"], "--json"]) == before
