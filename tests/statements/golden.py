"""Golden snapshots: what each statement reader makes of a file, every field written down.

A snapshot is plain JSON (amounts as the decimal text, dates ISO, enums by value) so that a
change to a reader shows field by field: :func:`flatten` turns a snapshot into
``{"accounts[0].transactions[2].description": ...}`` and the tests compare those, so pytest
names every path that differs. The files under ``golden/`` were written once from the readers
as they were, and are rewritten only on purpose::

    .venv/bin/python -m tests.statements.golden          # statement files (no server needed)

The connectors' goldens (their peers' answers as the connector reads them) are written by their
tests with ``BANKHUB_GOLDEN_WRITE=1``: ``tests/connectors/fints/test_golden.py`` and
``tests/connectors/ofxdirect/test_golden.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from bankhub.connectors.base import AccountRecord, TransactionRecord
from bankhub.statements import parse_statement
from bankhub.statements.model import ParsedStatement, StatementError

from .corpus import CORPUS

GOLDEN = Path(__file__).resolve().parent / "golden"
DATA = Path(__file__).resolve().parent / "data"
#: the corpus folders whose files the golden covers
FORMATS = ("ofx", "mt940")


def plain(value: Any) -> Any:
    """A JSON value for what a reader returned; a Decimal keeps its written scale."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    raise TypeError(f"no JSON form for {type(value).__name__}")


def statement(parsed: ParsedStatement) -> dict[str, Any]:
    snapshot: dict[str, Any] = plain(parsed)
    for account, source in zip(snapshot["accounts"], parsed.accounts, strict=True):
        # what a sync stores for the account, beside what the file states
        account["as_record"] = plain(source.to_account_record())
    return snapshot


def read_file(data: bytes, name: str) -> dict[str, Any]:
    """The statement importer's reading of a file, or the message it refuses it with."""
    try:
        return statement(parse_statement(data, name))
    except StatementError as exc:
        return {"error": exc.message, "format": exc.format}


def records(
    accounts: Iterable[AccountRecord], transactions: Iterable[TransactionRecord]
) -> dict[str, Any]:
    return {"accounts": plain(list(accounts)), "transactions": plain(list(transactions))}


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a snapshot under its path, so that a comparison names each difference."""
    if isinstance(value, dict):
        if not value:
            return {path: {}}
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{path}.{key}" if path else key))
        return out
    if isinstance(value, list):
        if not value:
            return {path: []}
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{path}[{index}]"))
        return out
    return {path: value}


def path_for(name: str) -> Path:
    return GOLDEN / f"{name}.json"


def load(name: str) -> Any:
    return json.loads(path_for(name).read_text(encoding="utf-8"))


def write(name: str, snapshot: Any) -> None:
    target = path_for(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(snapshot, indent=1, ensure_ascii=False, sort_keys=False)
    target.write_text(text + "\n", encoding="utf-8")


def writing() -> bool:
    """True when a test run is asked to write its golden instead of comparing with it."""
    return os.environ.get("BANKHUB_GOLDEN_WRITE") == "1"


def check(name: str, snapshot: Any) -> None:
    """Compare with the golden path by path (or write it, when asked to)."""
    if writing():
        write(name, snapshot)
        return
    assert flatten(snapshot) == flatten(load(name)), name


def statement_files() -> list[tuple[str, Path]]:
    """Every corpus OFX and MT940 file, and bankhub's own MT940 test files, by golden name."""
    found = [
        (f"{folder}/{path.relative_to(CORPUS / folder)}", path)
        for folder in FORMATS
        for path in sorted((CORPUS / folder).rglob("*"))
        if path.is_file()
    ]
    found += [(f"data/{path.name}", path) for path in sorted(DATA.iterdir()) if path.is_file()]
    return found


def main() -> None:
    for name, path in statement_files():
        write(name, read_file(path.read_bytes(), path.name))
        print("wrote", path_for(name).relative_to(GOLDEN.parent))


if __name__ == "__main__":
    main()
