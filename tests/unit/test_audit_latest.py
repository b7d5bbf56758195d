"""S43 fallback: the latest-release advisory check reads PyPI's project JSON correctly."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_latest.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_latest", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_latest"] = module
    spec.loader.exec_module(module)
    return module


DOCUMENTS: dict[str, dict[str, Any]] = {
    "https://pypi.org/pypi/fresh-pkg/json": {"info": {"version": "2.0"}, "vulnerabilities": []},
    "https://pypi.org/pypi/holey/json": {
        "info": {"version": "1.4"},
        "vulnerabilities": [
            {"id": "GHSA-aaaa", "aliases": ["CVE-2026-1"], "fixed_in": ["1.5"]},
            {"id": "PYSEC-old", "aliases": [], "fixed_in": ["1.4"], "withdrawn": "2026-01-01"},
            {"id": "GHSA-bbbb", "aliases": ["CVE-2026-2"], "fixed_in": []},
        ],
    },
    "https://pypi.org/pypi/stale/json": {
        "info": {"version": "9.0"},
        "vulnerabilities": [{"id": "GHSA-cccc", "aliases": [], "fixed_in": ["9.0"]}],
    },
}


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = _load()

    def urlopen(url: str, timeout: float) -> io.BytesIO:
        return io.BytesIO(json.dumps(DOCUMENTS[url]).encode())

    monkeypatch.setattr(module.urllib.request, "urlopen", urlopen)
    return module


def test_pins_are_read_from_pip_freeze(audit: ModuleType) -> None:
    text = "Fresh_Pkg==2.0\n# comment\n-e git+https://x\nholey==1.4 ; python_version>'3'\n"
    assert audit.pins(text) == [("Fresh_Pkg", "2.0"), ("holey", "1.4")]


def test_latest_release_advisories_fail_and_ignores_apply(
    audit: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "req.txt"
    requirements.write_text("fresh_pkg==2.0\nholey==1.4\nstale==1.0\n", encoding="utf-8")
    assert audit.main([str(requirements)]) == 1
    out = capsys.readouterr().out
    # the withdrawn advisory is not reported; both live ones are
    assert "VULNERABLE holey 1.4: GHSA-aaaa (fixed in 1.5); GHSA-bbbb (fixed in no fixed" in out
    assert "PYSEC-old" not in out
    # a package behind its latest release is named, never passed as checked
    assert "2 of 3 packages are at their latest release" in out
    assert "stale 1.0 (latest 9.0)" in out
    # ignoring by id or alias clears it
    assert audit.main([str(requirements), "--ignore-vuln", "GHSA-aaaa"]) == 1
    assert (
        audit.main([str(requirements), "--ignore-vuln", "GHSA-aaaa", "--ignore-vuln", "CVE-2026-2"])
        == 0
    )
