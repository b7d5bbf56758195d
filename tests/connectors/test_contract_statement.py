"""The statement connector keeps the shared connector contract for corpus files of each format."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bankhub.connectors.base import ConnectorContext, MemoryStateStore
from bankhub.connectors.statement.connector import StatementConnector, encode_file
from bankhub.connectors.testing import ContractCase, check_contract

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
FILES = [
    "camt/camt053.v2.multi.statement.xml",
    "mt940/betterplace/sepa_snippet.sta",
    "ofx/bank_medium.ofx",
    "csv/ing.csv",
]


@pytest.mark.parametrize("name", FILES)
async def test_statement_connector_keeps_the_contract(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    async with httpx.AsyncClient() as http:

        def build(store: MemoryStateStore) -> StatementConnector:
            return StatementConnector(
                ConnectorContext(
                    institution={"slug": "statement-file", "name": "Statement file"},
                    http=http,
                    state=store,
                    clock=lambda: datetime(2026, 11, 20, tzinfo=UTC),
                )
            )

        report = await check_contract(
            ContractCase(
                name=name,
                build=build,
                credentials={"file": encode_file(data), "filename": Path(name).name},
                # A file is read once; there is no bank to reopen a session with.
                unattended=False,
                secrets=(encode_file(data),),
            )
        )
    assert report.accounts
    assert sum(len(rows) for rows in report.transactions.values()) > 0
    assert report.identity is None  # a file names no bank user: its accounts decide
