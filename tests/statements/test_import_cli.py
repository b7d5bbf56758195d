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
from bankhub.logins.models import Login
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


def _app_and_customer(runner: CliRunner) -> tuple[str, str]:
    made = runner.invoke(cli, ["apps", "create", "Importer", "--json"])
    assert made.exit_code == 0, made.output
    client_id: str = json.loads(made.stdout)["client_id"]
    return client_id, asyncio.run(_new_customer(client_id))


def test_a_second_import_finds_the_login_and_adds_nothing(data_dir: Path) -> None:
    runner = CliRunner()
    client_id, customer_id = _app_and_customer(runner)
    names = (
        "camt/test-camt053",
        "mt940/vr-teilhaberbank.mta",
        "ofx/bank_medium.ofx",
        "csv/dkb.csv",
    )
    owner = ["--customer", customer_id, "--app", client_id]
    for name in names:
        args = ["import", str(CORPUS / name), "--json", *owner]
        first = runner.invoke(cli, args)
        assert first.exit_code == 0, first.output
        made = json.loads(first.stdout)["import"]
        assert made["login_created"] is True
        second = runner.invoke(cli, args)
        assert second.exit_code == 0, second.output
        again = json.loads(second.stdout)["import"]
        assert (again["login_id"], again["login_created"], again["secret"]) == (
            made["login_id"],
            False,
            None,
        ), name
        assert [a["imported"] for a in again["accounts"]] == [0] * len(made["accounts"]), name
    assert asyncio.run(_count(Login)) == len(names)
    assert asyncio.run(_transactions()) == 3 + 5 + 3 + 8


def test_login_option_adds_to_the_named_login(data_dir: Path) -> None:
    runner = CliRunner()
    client_id, customer_id = _app_and_customer(runner)
    owner = ["--customer", customer_id, "--app", client_id]
    asn = runner.invoke(cli, ["import", str(CORPUS / "mt940/ASNB/mt940.txt"), "--json", *owner])
    login_id = json.loads(asn.stdout)["import"]["login_id"]
    citi = str(CORPUS / "mt940/citi/mt940.txt")
    named = runner.invoke(cli, ["import", citi, *owner, "--login", str(login_id)])
    assert named.exit_code == 0, named.output
    assert f"imported into login {login_id}" in named.stdout
    assert "login-secret" not in named.stdout
    # The login holds the Citi account now: an import without --login finds it there.
    found = runner.invoke(cli, ["import", citi, "--json", *owner])
    assert json.loads(found.stdout)["import"]["login_id"] == login_id
    assert asyncio.run(_count(Login)) == 1
    unknown = runner.invoke(cli, ["import", citi, *owner, "--login", "999999"])
    assert unknown.exit_code == 2
    assert "Cannot find a statement login with id 999999" in unknown.stderr
    alone = runner.invoke(cli, ["import", citi, "--login", str(login_id)])
    assert alone.exit_code == 2
    assert "--login needs --customer and --app" in alone.stderr


async def _count(model: type[Login]) -> int:
    db = Database(Settings().resolved_database_url())
    try:
        async with db.transaction() as session:
            return (await session.execute(select(func.count()).select_from(model))).scalar_one()
    finally:
        await db.dispose()


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


def test_a_qif_file_needs_its_currency(data_dir: Path) -> None:
    qif = Path(__file__).parent / "data" / "profiles" / "quicken.qif"
    runner = CliRunner()
    refused = runner.invoke(cli, ["import", str(qif), "--json"])
    assert refused.exit_code == 2
    assert "states no currency" in refused.output
    bad = runner.invoke(cli, ["import", str(qif), "--json", "--currency", "dollars"])
    assert bad.exit_code == 2
    assert "is not an ISO 4217 code" in bad.output
    read = runner.invoke(cli, ["import", str(qif), "--json", "--currency", "usd"])
    assert read.exit_code == 0, read.output
    found = json.loads(read.output)
    assert found["format"] == "qif"
    assert [(a["currency"], a["transactions"]) for a in found["accounts"]] == [("USD", 4)]
