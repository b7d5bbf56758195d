"""Fail when bankhub's import graph has a cycle, or a module that no layer lists.

import-linter's contracts (``[tool.importlinter]`` in pyproject.toml) forbid imports that run
against the layers, but a cycle among modules of one layer, or among modules no contract lists,
passes them. This check reads the same graph (grimp, import-linter's graph library, which also
sees imports inside functions and under ``TYPE_CHECKING``) and fails on every strongly
connected component of more than one module. It also fails on a module that the layers contract
does not place (itself or a package above it), so that a new module cannot slip past the layers
unchecked; a package's ``__init__`` is exempt when the package's modules sit in several layers.

Our own code because import-linter has no contract for "no cycle anywhere" (its
``acyclic_siblings`` looks at siblings of one package only) and none for "every module placed".

    .venv/bin/python scripts/import_cycles.py            # exit 1 and the cycles, if any
    .venv/bin/python scripts/import_cycles.py --verbose  # also each cycle's imports
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import grimp

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def components(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module, iteratively (the graph
    is deep enough to exhaust Python's recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.find_modules_directly_imported_by(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            if successors:
                nxt = successors.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return sorted(found)


def layered(pyproject: Path) -> list[str]:
    """Every module the ``layers`` contract names."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c.get("type") == "layers")["layers"]
    return [name for layer in layers for name in re.split(r"[|:\s]+", layer) if name]


def unplaced(graph: grimp.ImportGraph, listed: list[str], package: str) -> list[str]:
    """Modules no layer places: neither listed nor inside a listed package. A package above
    listed modules (``bankhub.accounts`` over ``bankhub.accounts.routes``) is exempt."""
    found = []
    for module in sorted(graph.modules):
        if ".migrations" in module:  # Alembic's revisions: run by Alembic, imported by nobody
            continue
        if any(module == name or module.startswith(name + ".") for name in listed):
            continue
        if module == package or any(name.startswith(module + ".") for name in listed):
            continue
        found.append(module)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="bankhub")
    parser.add_argument("--verbose", action="store_true", help="list each cycle's imports")
    args = parser.parse_args()
    graph = grimp.build_graph(args.package, cache_dir=None)
    cycles = components(graph)
    for members in cycles:
        print(f"import cycle of {len(members)} modules:")
        inside = set(members)
        for module in members:
            print(f"  {module}")
            if args.verbose:
                for target in sorted(graph.find_modules_directly_imported_by(module) & inside):
                    for detail in graph.get_import_details(importer=module, imported=target):
                        print(f"      -> {target} (line {detail['line_number']})")
    strays = unplaced(graph, layered(PYPROJECT), args.package)
    for module in strays:
        print(f"{module}: in no layer of [tool.importlinter] (pyproject.toml); place it in one")
    if cycles or strays:
        print(f"{len(cycles)} import cycle(s), {len(strays)} unplaced module(s)", file=sys.stderr)
        return 1
    print(f"no import cycles in {args.package} ({len(graph.modules)} modules), every one placed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
