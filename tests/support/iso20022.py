"""pain.001 files read back independently of the generator: validated against ISO 20022's
schema as a source other than sepaxml ships it (scripts/fetch_iso20022_xsd.py: a pinned PyPI
release, sha256-checked), and decoded by xmlschema into plain data."""

from __future__ import annotations

import functools
import importlib.util
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import xmlschema

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fetch = _script("fetch_iso20022_xsd")


@functools.cache
def schema(version: str) -> xmlschema.XMLSchema:
    """ISO 20022's schema of ``version``, from the pinned independent copy (fetched once)."""
    return xmlschema.XMLSchema(str(fetch.schema_file(version)))


def read(document: bytes, version: str) -> dict[str, Any]:
    """``document`` validated against the independent schema (raises on any breach), decoded
    with amounts as ``Decimal``."""
    checked = schema(version)
    checked.validate(document.decode("utf-8"))
    decoded = checked.to_dict(document.decode("utf-8"), decimal_type=Decimal, validation="strict")
    assert isinstance(decoded, dict)
    return decoded


def transfers(decoded: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``CdtTrfTxInf`` of a decoded file, with its payment info's execution date."""
    found = []
    for info in decoded["CstmrCdtTrfInitn"]["PmtInf"]:
        when = info["ReqdExctnDt"]
        day = when["Dt"] if isinstance(when, dict) else when
        for tx in info["CdtTrfTxInf"]:
            found.append({**tx, "_date": str(day)})
    return found
