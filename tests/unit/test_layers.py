"""bankhub's layers hold: the import contracts of pyproject.toml are kept, no import cycle, and
every module is placed in a layer (``scripts/import_cycles.py``; ``scripts/test`` runs both)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import grimp
import pytest
from importlinter.application.use_cases import lint_imports
from importlinter.configuration import configure

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _checker() -> ModuleType:
    script = ROOT / "scripts" / "import_cycles.py"
    spec = importlib.util.spec_from_file_location("import_cycles", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_import_contracts_are_kept() -> None:
    """Layers, no route module importing another, pure connectors, services free of HTTP."""
    configure()
    assert lint_imports(config_filename=str(PYPROJECT), cache_dir=None, no_logo=True)


def test_no_import_cycle_and_every_module_in_a_layer() -> None:
    checker = _checker()
    graph = grimp.build_graph("bankhub", cache_dir=None)
    assert checker.components(graph) == []
    assert checker.unplaced(graph, checker.layered(PYPROJECT), "bankhub") == []


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_check_finds_a_cycle_and_an_unplaced_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checker fails when it should: a cycle through an import inside a function counts."""
    _package(
        tmp_path,
        {
            "circle/__init__.py": "",
            "circle/a.py": "from circle import b\n",
            "circle/b.py": "def late() -> None:\n    from circle import c\n",
            "circle/c.py": "import circle.a\n",
            "circle/d.py": "",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "circle", raising=False)
    checker = _checker()
    graph = grimp.build_graph("circle", cache_dir=None)
    assert checker.components(graph) == [["circle.a", "circle.b", "circle.c"]]
    assert checker.unplaced(graph, ["circle.a", "circle.b", "circle.c"], "circle") == ["circle.d"]
