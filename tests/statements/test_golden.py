"""Every OFX and MT940 corpus file imports exactly as the golden snapshot written down."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import golden

FILES = golden.statement_files()


def test_every_file_has_a_golden_and_every_golden_a_file() -> None:
    written = {
        str(p.relative_to(golden.GOLDEN))[: -len(".json")]
        for p in golden.GOLDEN.rglob("*.json")
        if p.parts[len(golden.GOLDEN.parts)] in (*golden.FORMATS, "data")
    }
    assert written == {name for name, _ in FILES}


@pytest.mark.parametrize(("name", "path"), FILES, ids=[name for name, _ in FILES])
def test_file_reads_as_its_golden(name: str, path: Path) -> None:
    golden.check(name, golden.read_file(path.read_bytes(), path.name))
