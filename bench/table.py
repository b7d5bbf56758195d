"""bench/README.md's table of the latest run, made from ``bench/results/latest.json``.

    python -m bench.table            # print the table
    python -m bench.table --write    # put it into bench/README.md between its markers

The README shows what the committed ``latest.json`` holds and nothing else:
``tests/bench/test_table.py`` fails when the two differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, ROOT

README = ROOT / "bench" / "README.md"
BEGIN = "<!-- latest-table: made by `python -m bench.table --write` from results/latest.json -->"
END = "<!-- latest-table end -->"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _runs(runs: list[float]) -> str:
    return f" (runs {', '.join(_number(r) for r in runs)})" if len(runs) > 1 else ""


def _load(benchmark: dict[str, Any]) -> str:
    load = benchmark["load_average_1m"]
    return f"{load['min']:g}–{load['max']:g}"


def _result_rows(name: str, benchmark: dict[str, Any]) -> list[str]:
    rows = []
    size = "" if benchmark["full_size"] else f" — partial: {benchmark['partial']}"
    for r in benchmark["results"]:
        unit = r["unit"]
        value = f"{_number(r['value'])} {unit}{_runs(r['runs'])}"
        baseline = "" if r["baseline"] is None else f"{_number(r['baseline'])} {unit}"
        servers = r["detail"].get("servers")
        if servers:
            bare = servers["bare driver"]
            baseline = f"bare driver {_number(bare['rps'])} req/s{_runs(bare['runs'])}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        met = "yes" if r["met"] else "no"
        rows.append(
            f"| {r['name']}{size} | {value} | {baseline} | {ratio} | {r['target']} | {met} | "
            f"{_load(benchmark)} |"
        )
    return rows


def _server_rows(name: str, result: dict[str, Any]) -> list[str]:
    rows = []
    for server, f in result["detail"]["servers"].items():
        cpu = f"{f['server_cpu_ms']:.2f}"
        if "database_cpu_ms" in f:
            cpu += f" + {f['database_cpu_ms']:.2f}"
        ratio = "" if server == "bankhub" else f"{f['bankhub_ratio']:.2f}"
        p99 = "" if server == "bankhub" else f"{f['bankhub_p99_ratio']:.2f}"
        rows.append(
            f"| {name} | {server} | {_number(f['rps'])}{_runs(f['runs'])} | "
            f"{f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {cpu} | {ratio} | {p99} |"
        )
    return rows


def table(document: dict[str, Any]) -> str:
    """The results, then every server of the read benchmark, then what the file says of itself."""
    lines = [
        "| benchmark | bankhub | baseline | ratio | target | met | load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    servers: list[str] = []
    for name, benchmark in document["benchmarks"].items():
        lines += _result_rows(name, benchmark)
        for result in benchmark["results"]:
            if result["detail"].get("servers"):
                label = result["name"].removesuffix(" throughput")
                servers += _server_rows(label, result)
    if servers:
        lines += [
            "",
            "| read | server | req/s (median of runs) | p50 ms | p99 ms | CPU ms per request "
            "(server + PostgreSQL) | bankhub ÷ it, req/s | bankhub ÷ it, p99 |",
            "|---|---|---|---|---|---|---|---|",
            *servers,
        ]
    state = "partial run" if document["partial"] else "full run"
    if document["not_run"]:
        state += f" (not run: {', '.join(document['not_run'])})"
    lines += [
        "",
        f"{state}; {document['machine']['cpus']} CPUs; load (1 min) sampled during each "
        f"benchmark; {document['seconds']:,} s in all.",
    ]
    return "\n".join(lines)


def readme_with(readme: str, made: str) -> str:
    """``readme`` with the text between the markers replaced by ``made``."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n\n" + made + "\n\n" + readme[end:]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.table")
    parser.add_argument("--results", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--write", action="store_true", help="rewrite bench/README.md's table")
    args = parser.parse_args()
    made = table(json.loads(args.results.read_text()))
    if args.write:
        README.write_text(readme_with(README.read_text(), made))
    else:
        print(made)
    return 0


if __name__ == "__main__":
    sys.exit(main())
