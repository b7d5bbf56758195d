"""The sandbox bank's own record of the payments it was asked to make.

A real bank keeps its payments whatever happens to bankhub; so must the simulated one, or a
crash of bankhub between sending a payment and recording the answer could not be reconciled
by asking the bank. The record is a small SQLite file of the bank's own (the standard library's
``sqlite3``, not bankhub's database: the bank is another party), in the directory the platform
gives the connector (``sandbox_bank_dir``), shared by every process on the host and surviving
them. One row per payment, unique per institution and bankhub's request id, which is what makes
the bank idempotent on that id.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

FILE_NAME = "sandbox-bank-payments.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    bank_id TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    request_id TEXT NOT NULL,
    username TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    step TEXT,
    order_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    settle_at TEXT,
    UNIQUE (slug, request_id)
)
"""
#: without a directory (a connector built outside the platform) the record lives in memory
_memory_lock = threading.Lock()
_memory: sqlite3.Connection | None = None


@dataclass(frozen=True, slots=True)
class BankPayment:
    bank_id: str
    slug: str
    request_id: str
    username: str
    status: str
    reason: str | None
    #: the authorisation step the bank waits for (``code``, ``decoupled:<iso time>``,
    #: ``redirect``), None once authorised
    step: str | None
    order: dict[str, Any]
    created_at: datetime
    settle_at: datetime | None


def _row(row: sqlite3.Row) -> BankPayment:
    return BankPayment(
        bank_id=row["bank_id"],
        slug=row["slug"],
        request_id=row["request_id"],
        username=row["username"],
        status=row["status"],
        reason=row["reason"],
        step=row["step"],
        order=json.loads(row["order_json"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        settle_at=datetime.fromisoformat(row["settle_at"]) if row["settle_at"] else None,
    )


class Ledger:
    def __init__(self, directory: str | None) -> None:
        self.path = Path(directory) / FILE_NAME if directory else None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        global _memory
        if self.path is None:
            with _memory_lock:
                if _memory is None:
                    _memory = sqlite3.connect(":memory:", check_same_thread=False)
                    _memory.row_factory = sqlite3.Row
                    _memory.execute(_SCHEMA)
                with _memory:
                    yield _memory
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10.0)) as connection:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            with connection:  # one transaction, committed (durably) before the bank answers
                yield connection

    def put(
        self,
        *,
        slug: str,
        request_id: str,
        username: str,
        status: str,
        step: str | None,
        order: dict[str, Any],
        now: datetime,
    ) -> tuple[BankPayment, bool]:
        """The payment of ``request_id`` at this bank, made now unless it exists; and whether
        it was made now."""
        with self._connect() as db:
            found = db.execute(
                "SELECT * FROM payments WHERE slug = ? AND request_id = ?", (slug, request_id)
            ).fetchone()
            if found is not None:
                return _row(found), False
            bank_id = f"sbx-{secrets.token_hex(8)}"
            stamp = now.isoformat()
            db.execute(
                "INSERT INTO payments (bank_id, slug, request_id, username, status, step,"
                " order_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    bank_id,
                    slug,
                    request_id,
                    username,
                    status,
                    step,
                    json.dumps(order),
                    stamp,
                    stamp,
                ),
            )
            made = db.execute("SELECT * FROM payments WHERE bank_id = ?", (bank_id,)).fetchone()
            return _row(made), True

    def get(self, slug: str, bank_id: str) -> BankPayment | None:
        with self._connect() as db:
            found = db.execute(
                "SELECT * FROM payments WHERE slug = ? AND bank_id = ?", (slug, bank_id)
            ).fetchone()
            return _row(found) if found is not None else None

    def by_request(self, slug: str, request_id: str) -> BankPayment | None:
        with self._connect() as db:
            found = db.execute(
                "SELECT * FROM payments WHERE slug = ? AND request_id = ?", (slug, request_id)
            ).fetchone()
            return _row(found) if found is not None else None

    def update(
        self,
        bank_id: str,
        *,
        status: str,
        reason: str | None,
        step: str | None,
        now: datetime,
        settle_at: datetime | None = None,
        order: dict[str, Any] | None = None,
    ) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE payments SET status = ?, reason = ?, step = ?, updated_at = ?,"
                " settle_at = ? WHERE bank_id = ?",
                (
                    status,
                    reason,
                    step,
                    now.isoformat(),
                    settle_at.isoformat() if settle_at else None,
                    bank_id,
                ),
            )
            if order is not None:
                db.execute(
                    "UPDATE payments SET order_json = ? WHERE bank_id = ?",
                    (json.dumps(order), bank_id),
                )

    def executed(self, slug: str, username: str) -> list[BankPayment]:
        """The user's executed payments at this bank, oldest first (their debits)."""
        if self.path is not None and not self.path.exists():
            return []  # no payment was ever made here: every read of accounts asks this
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM payments WHERE slug = ? AND username = ? AND status = 'executed'"
                " ORDER BY created_at, bank_id",
                (slug, username),
            ).fetchall()
            return [_row(row) for row in rows]
