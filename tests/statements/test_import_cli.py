"""``bankhub import``: parse-only summaries, broken files, and imports for a customer."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bankhub.accounts.models import Transaction
from bankhub.cli import cli
from bankhub.config import Settings
from bankhub.db.engine import Database
from tests.statements.corpus import CORPUS


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("BANKHUB_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "camt/camt053.v2.multi.statement.xml",
            {
                "format": "camt.053",
                "accounts": [
                    {
                        "account": "NL26VAYB8060476890",
                        "currency": "EUR",
                        "transactions": 2,
                        "closing_balance": "20.00",
                        "closing_date": "2014-12-31",
                    }
                ],
            },
        ),
        (
            "mt940/betterplace/sepa_snippet.sta",
            {
                "format": "mt940",
                "accounts": [
                    {
                        "account": "0194787400888",
                        "currency": "EUR",
                        "transactions": 4,
                        "closing_balance": "1125250.4",
                        "closing_date": "2007-09-04",
                    },
                    {
                        "account": "0194791600888",
                        "currency": "EUR",
                        "transactions": 7,
                        "closing_balance": "-4472049.09",
                        "closing_date": "2007-09-04",
                    },
                ],
            },
        ),
        (
            "csv/ing.csv",
            {
                "format": "csv:ing",
                "accounts": [
                    {
                        "account": "DE89370400440532013000",
                        "currency": "EUR",
                        "transactions": 20,
                        "closing_balance": None,
                        "closing_date": None,
                    }
                ],
            },
        ),
    ],
)
def test_import_json_prints_only_the_summary_and_stores_nothing(
    data_dir: Path, name: str, expected: dict[str, object]
) -> None:
    result = CliRunner().invoke(cli, ["import", str(CORPUS / name), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected
    assert not (data_dir / "bankhub.sqlite3").exists()


def test_import_prints_a_table_without_json(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["import", str(CORPUS / "ofx/bank_medium.ofx")])
    assert result.exit_code == 0, result.output
    assert "000012345678" in result.stdout
    assert "CAD" in result.stdout
    assert "3 transactions" in result.stdout
    assert "382.34" in result.stdout


def test_broken_file_exits_2_with_the_parser_message(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["import", str(CORPUS / "ofx/error_message.ofx"), "--json"])
    assert result.exit_code == 2
    assert "code 2000" in result.stderr
    assert result.stdout == ""
    cut = data_dir / "cut.xml"
    cut.write_bytes((CORPUS / "camt/camt053.v2.multi.statement.xml").read_bytes()[:700])
    result = CliRunner().invoke(cli, ["import", str(cut)])
    assert result.exit_code == 2
    assert "cut.xml:" in result.stderr


def test_import_for_a_customer_stores_once(data_dir: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["apps", "create", "Importer", "--json"])
    assert made.exit_code == 0, made.output
    client_id = json.loads(made.stdout)["client_id"]
    customer_id = asyncio.run(_new_customer(client_id))
    args = ["import", str(CORPUS / "mt940/ASNB/mt940.txt"), "--json"]
    first = runner.invoke(cli, [*args, "--customer", customer_id, "--app", client_id])
    assert first.exit_code == 0, first.output
    done = json.loads(first.stdout)["import"]
    assert [a["imported"] for a in done["accounts"]] == [8]
    assert len(done["secret"]) == 36
    assert asyncio.run(_transactions()) == 8
    unknown = runner.invoke(cli, [*args, "--customer", customer_id, "--app", "nope"])
    assert unknown.exit_code == 2
    assert "No app with client id" in unknown.stderr
    half = runner.invoke(cli, [*args, "--customer", customer_id])
    assert half.exit_code == 2


async def _new_customer(client_id: str) -> str:
    from bankhub.clock import utcnow
    from bankhub.customers import services as customers
    from bankhub.partners.models import App

    db = Database(Settings().resolved_database_url())
    try:
        async with db.transaction() as session:
            app = (
                await session.execute(select(App).where(App.client_id == client_id))
            ).scalar_one()
            customer = await customers.create_customer(session, utcnow, app, "cli-user")
            return customer.id
    finally:
        await db.dispose()


async def _transactions() -> int:
    db = Database(Settings().resolved_database_url())
    try:
        async with db.transaction() as session:
            return (
                await session.execute(select(func.count()).select_from(Transaction))
            ).scalar_one()
    finally:
        await db.dispose()
