"""bench/README.md's table is what ``python -m bench.table`` makes of the committed
``bench/results/latest.json``: the figures in the README are the file's, and the file says how
the run went (load, size, what was left out)."""

from __future__ import annotations

import json

from bench.harness import RESULTS
from bench.table import BEGIN, END, README, readme_with, table


def test_the_readme_table_is_made_from_latest_json() -> None:
    document = json.loads((RESULTS / "latest.json").read_text())
    readme = README.read_text()
    assert readme.count(BEGIN) == 1
    assert readme.count(END) == 1
    assert readme_with(readme, table(document)) == readme, (
        "bench/README.md's table differs from bench/results/latest.json: "
        "run `python -m bench.table --write`"
    )


def test_latest_json_says_how_the_run_went() -> None:
    document = json.loads((RESULTS / "latest.json").read_text())
    assert document["machine"]["cpus"] >= 1
    for benchmark in document["benchmarks"].values():
        load = benchmark["load_average_1m"]
        assert 0 <= load["min"] <= load["max"]
        assert benchmark["full_size"] == ("partial" not in benchmark)
        for result in benchmark["results"]:
            # a median of at least three runs, each listed, at full size
            if benchmark["full_size"] and result["runs"]:
                assert len(result["runs"]) >= 3, result["name"]
    left_out = document["not_run"] or any(
        not b["full_size"] for b in document["benchmarks"].values()
    )
    assert document["partial"] == bool(left_out)
