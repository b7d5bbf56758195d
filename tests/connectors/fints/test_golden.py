"""What the connector makes of the dummy bank's MT940, frozen field by field (see
``tests/statements/golden.py``): the records it returns, and the statement-file reading of the
same MT940 text, so that the two readings are seen side by side."""

from __future__ import annotations

from typing import Any

import pytest

from bankhub.connectors.base import MemoryStateStore
from bankhub.connectors.fints.bank import BankSession
from bankhub.statements import mt940
from tests.statements import golden

from .conftest import Build
from .dummy import GOOD_PIN, USER


async def test_the_dummy_banks_statements_read_as_their_golden(
    build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: list[Any] = []
    fetch = BankSession._pages

    def recording(self: BankSession, *args: Any) -> list[Any]:
        found = fetch(self, *args)
        answers.extend(found)
        return found

    monkeypatch.setattr(BankSession, "_pages", recording)
    connector = build(MemoryStateStore())
    await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    accounts = await connector.fetch_accounts()
    answers.clear()  # the balance read above asked for the same statements
    rows = await connector.fetch_transactions(accounts[0], None, None)
    await connector.close()

    golden.check("fints-dummy/connector", golden.records(accounts, rows))
    booked = b"".join(a.statement_booked for a in answers)
    assert b":61:" in booked
    assert not any(a.statement_pending for a in answers)
    golden.check("fints-dummy/statement-file", golden.read_file(booked, "hikaz.sta"))
    # one MT940 reader: the connector's rows are the statement-file reading of the same text
    (account,) = mt940.parse(booked).accounts
    assert rows == list(account.transactions)
