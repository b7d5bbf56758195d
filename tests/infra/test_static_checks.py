"""The static checks ``scripts/test`` runs cover what they claim: mypy both trees, vulture src/.

The checks themselves run as steps of ``scripts/test``; these tests pin their configuration, so
that narrowing it (mypy back to the package alone, vulture's whitelist swallowing everything)
fails here as well as in review.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        tool: dict[str, object] = tomllib.load(file)["tool"]
    return tool


def _vulture(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vulture", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_one_mypy_run_checks_src_and_tests_strictly() -> None:
    mypy = _config()["mypy"]
    assert isinstance(mypy, dict)
    assert mypy["strict"] is True
    assert sorted(mypy["files"]) == ["src", "tests"]
    for override in mypy.get("overrides", []):
        modules = override["module"]
        assert not any(name.startswith(("bankhub", "tests")) for name in modules), override
        assert "ignore_errors" not in override, override


def test_vulture_finds_no_dead_code_in_src() -> None:
    vulture = _config()["vulture"]
    assert isinstance(vulture, dict)
    assert vulture["paths"] == ["src", "scripts/vulture_whitelist.py"]
    found = _vulture()
    assert (found.returncode, found.stdout) == (0, ""), found.stdout + found.stderr


def test_vulture_reports_a_function_nothing_calls(tmp_path: Path) -> None:
    """The whitelist names what is used; it must not hide a new function nobody calls."""
    dead = tmp_path / "dead.py"
    dead.write_text("def forgotten_helper() -> int:\n    return 1\n")
    found = _vulture("src", "scripts/vulture_whitelist.py", str(dead))
    assert found.returncode == 3, found.stdout + found.stderr
    assert found.stdout.splitlines() == [
        f"{dead}:1: unused function 'forgotten_helper' (60% confidence)"
    ]
