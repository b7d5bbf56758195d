"""The benchmark suite still runs on the current schema (it is not part of CI otherwise).

Runs ``python -m bench --tiny --only ingest concurrency connect connect_hop``: the two that seed
databases through bankhub's services and sync engine, and the two that drive the connect page as a
browser would (they read its words, so a change of the page's wording or language breaks them);
each finishes in seconds. Nothing here looks at timings; a benchmark that breaks (a column gone,
a service renamed, words it waits for) exits non-zero or reports its failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"name", "value", "unit", "baseline", "ratio", "target", "met", "note", "runs", "detail"}


@pytest.mark.postgres
def test_tiny_benchmarks_run_and_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    command = [sys.executable, "-m", "bench", "--tiny", "--only", "ingest", "concurrency"]
    command += ["connect", "connect_hop"]
    done = subprocess.run(
        [*command, "--results", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    document = json.loads((out / "latest.json").read_text())
    # a tiny run says so, per benchmark, and that the others did not run
    assert document["partial"] is True
    assert set(document["not_run"]) == {"read", "webhooks"}
    for benchmark in ("ingest", "concurrency"):
        assert document["benchmarks"][benchmark]["partial"] == "tiny sizes (--tiny)"
        load = document["benchmarks"][benchmark]["load_average_1m"]
        assert 0 <= load["min"] <= load["max"]
    results = [r for b in document["benchmarks"].values() for r in b["results"]]
    by_name = {r["name"]: r for r in results}
    assert set(by_name) == {
        "ingest sqlite",
        "ingest postgresql",
        "concurrency wall time",
        "concurrency peak RSS",
        "concurrency wall time, 2 workers, postgresql",
        "concurrency peak RSS, 2 workers, postgresql",
        "connect step p99",
        "connect step passed on, p99",
    }
    for result in results:
        assert set(result) == FIELDS
        assert result["value"] > 0
    # Each comparison had its same-run baseline (a failed runner reports a baseline of 0).
    for name in (
        "ingest sqlite",
        "ingest postgresql",
        "concurrency wall time",
        "concurrency wall time, 2 workers, postgresql",
    ):
        assert by_name[name]["baseline"] > 0
        assert by_name[name]["ratio"] > 0
    # every login was refreshed, none failed; with two workers, each exactly once
    report = (out / "latest.md").read_text()
    assert "only " not in report
    assert report.count("{'ok': 200}") == 2
    assert "at most 1 run(s) of any login" in report
