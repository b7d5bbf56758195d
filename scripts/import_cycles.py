"""Fail when bankhub's import graph has a cycle.

import-linter's contracts (``[tool.importlinter]`` in pyproject.toml) forbid imports that run
against the layers, but a cycle among modules of one layer, or among modules no contract lists,
passes them. This check reads the same graph (grimp, import-linter's graph library, which also
sees imports inside functions and under ``TYPE_CHECKING``) and fails on every strongly
connected component of more than one module.

    .venv/bin/python scripts/import_cycles.py            # exit 1 and the cycles, if any
    .venv/bin/python scripts/import_cycles.py --verbose  # also each cycle's imports
"""

from __future__ import annotations

import argparse
import sys

import grimp


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
    if cycles:
        print(f"{len(cycles)} import cycle(s) in {args.package}", file=sys.stderr)
        return 1
    print(f"no import cycles in {args.package} ({len(graph.modules)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
