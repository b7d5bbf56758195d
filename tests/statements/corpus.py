"""Where the third-party corpus lives, next to the repository."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


def read(relative: str) -> bytes:
    return (CORPUS / relative).read_bytes()
