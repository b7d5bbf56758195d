"""How transactions are encrypted at rest was chosen by this measurement (docs/security.md).

A 100-row page by account from 200,000 transactions, CPU per page: the query through sqlite3
against the same query through SQLCipher (the whole file encrypted), and the opening of the
page's per-row envelopes (AES-256-GCM + msgspec, what bankhub does). SQLCipher is not one of
bankhub's dependencies; install it beside, then run::

    pip install --target /tmp/sqlc sqlcipher3-binary
    SQLCIPHER_PATH=/tmp/sqlc .venv/bin/python -m bench.at_rest
"""

# ruff: noqa: S311
from __future__ import annotations

import importlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from bankhub.accounts.details import Details, _encode, decode
from bankhub.security.crypto import Box

ROWS, ACCOUNTS = 200_000, 2_000
QUERY = (
    "SELECT id, account_id, dedupe_key, date, amount, currency, category, status, details_enc"
    " FROM t WHERE app_id = 1 AND account_id = ? ORDER BY date DESC, id DESC LIMIT 100"
)
box = Box({"k1": os.urandom(32)}, "k1")


def _rows() -> Iterator[tuple[Any, ...]]:
    for i in range(ROWS):
        account = i % ACCOUNTS
        key = f"b:{i:040x}"
        fields = Details(
            f"tx-{account}-{i}",
            f"CARD PAYMENT REWE BERLIN {i:08d}",
            "REWE",
            {"mcc": "5411"} if i % 3 == 0 else None,
        )
        sealed = box.encrypt(_encode(fields), f"1|transactions|details|{account}:{key}".encode())
        day = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"
        yield (i, 1, account, key, day, "-12.34", "EUR", "groceries", "booked", sealed)


def _open(connect: Callable[[str], Any], path: str, key: str | None) -> Any:
    db = connect(path)
    if key:
        db.execute(f"PRAGMA key = '{key}'")
    return db


def build(connect: Callable[[str], Any], path: str, key: str | None = None) -> None:
    db = _open(connect, path, key)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, app_id INT, account_id INT, dedupe_key TEXT,"
        " date TEXT, amount TEXT, currency TEXT, category TEXT, status TEXT, details_enc TEXT)"
    )
    db.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?,?)", _rows())
    db.execute("CREATE INDEX ix ON t (account_id, date, id)")
    db.commit()
    db.close()


def measure(
    connect: Callable[[str], Any], path: str, key: str | None = None, n: int = 2000
) -> tuple[float, float, float]:
    """CPU ms per page: the first 200 pages of a fresh connection, then min and median."""
    rng = random.Random(1)
    db = _open(connect, path, key)
    accounts = [rng.randrange(ACCOUNTS) for _ in range(n)]
    started = time.process_time()
    for account in accounts[:200]:
        db.execute(QUERY, (account,)).fetchall()
    first = (time.process_time() - started) / 200 * 1000
    runs = []
    for _ in range(5):
        started = time.process_time()
        for account in accounts:
            db.execute(QUERY, (account,)).fetchall()
        runs.append((time.process_time() - started) / n * 1000)
    db.close()
    return first, min(runs), statistics.median(runs)


def main() -> None:
    sys.path.insert(0, os.environ.get("SQLCIPHER_PATH", ""))
    sqlcipher: Any = importlib.import_module("sqlcipher3.dbapi2")
    work = tempfile.mkdtemp()
    plain, ciphered, key = f"{work}/plain.db", f"{work}/cipher.db", "x" * 32
    build(sqlite3.connect, plain)
    build(sqlcipher.connect, ciphered, key)
    print("SQLCipher's SQLite", sqlcipher.sqlite_version, "/ sqlite3", sqlite3.sqlite_version)
    for _ in range(2):
        for label, connect, path, secret in (
            ("sqlite3", sqlite3.connect, plain, None),
            ("SQLCipher", sqlcipher.connect, ciphered, key),
        ):
            first, best, median = measure(connect, path, secret)
            print(
                f"{label:10} page query CPU: first 200 {first:.3f} ms, "
                f"then min {best:.3f} median {median:.3f} ms"
            )
    db = sqlite3.connect(plain)
    page = db.execute(QUERY, (7,)).fetchall()
    db.close()
    runs = []
    for _ in range(7):
        started = time.process_time()
        for _ in range(500):
            for row in page:
                decode(box.decrypt(row[8], f"1|transactions|details|{row[1]}:{row[2]}".encode()))
        runs.append((time.process_time() - started) / 500 * 1000)
    print(
        f"opening the page's 100 envelopes CPU: min {min(runs):.3f} "
        f"median {statistics.median(runs):.3f} ms"
    )


if __name__ == "__main__":
    main()
