"""``bankhub apps list | archive | restore | rename``, run in-process against a data dir of its
own: the state each app is in, and an archived app's keys refused until it is restored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bankhub.audit.models import AuditEntry
from bankhub.cli import cli
from bankhub.config import Settings
from bankhub.errors import DomainError, ErrorCode
from tests.support.cli import authenticate, in_db


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    return tmp_path


def _run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    return result


def _create(name: str) -> dict[str, str]:
    result = _run("apps", "create", name, "--json")
    assert result.exit_code == 0, result.output
    created: dict[str, str] = json.loads(result.stdout)
    return created


def test_list_archive_restore_and_rename(data_dir: Path) -> None:
    kept, gone = _create("Kept app"), _create("Old app")
    archived = _run("apps", "archive", gone["client_id"])
    assert archived.exit_code == 0, archived.output
    assert f"{gone['client_id']}: archived" in archived.stdout
    with pytest.raises(DomainError) as refused:
        authenticate(gone)
    assert refused.value.code == ErrorCode.APP_ARCHIVED
    assert authenticate(kept) == kept["client_id"]

    live = _run("apps", "list").stdout
    assert kept["client_id"] in live
    assert gone["client_id"] not in live
    only_archived = _run("apps", "list", "--archived").stdout
    assert gone["client_id"] in only_archived
    assert "archived 20" in only_archived
    assert kept["client_id"] not in only_archived
    rows = {r["client_id"]: r for r in json.loads(_run("apps", "list", "--all", "--json").stdout)}
    assert rows[kept["client_id"]]["archived"] is False
    assert rows[gone["client_id"]]["archived"] is True
    assert rows[gone["client_id"]]["archived_by"] == "operator"
    assert rows[gone["client_id"]]["name"] == "Old app"
    assert "archived already" in _run("apps", "archive", gone["client_id"]).stdout

    restored = _run("apps", "restore", gone["client_id"])
    assert restored.exit_code == 0, restored.output
    assert authenticate(gone) == gone["client_id"]
    assert "not archived" in _run("apps", "restore", gone["client_id"]).stdout

    renamed = _run("apps", "rename", kept["client_id"], "Renamed app")
    assert renamed.exit_code == 0, renamed.output
    assert "Renamed app" in _run("apps", "list").stdout
    blank = _run("apps", "rename", kept["client_id"], "   ")
    assert blank.exit_code == 2
    assert "Name the app" in blank.output
    unknown = _run("apps", "archive", "no-such-client")
    assert unknown.exit_code == 2
    assert "no app with client-id no-such-client" in unknown.output

    async def actions(session: Any, settings: Settings) -> list[tuple[str, str]]:
        entries = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars()
        return [(e.action, e.actor) for e in entries if e.action.startswith("app.")]

    assert [a for a in in_db(actions) if a[0] != "app.created"] == [
        ("app.archived", "operator"),
        ("app.restored", "operator"),
        ("app.renamed", "operator"),
    ]
