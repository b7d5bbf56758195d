"""What every benchmark shares: results as ratios against a baseline, medians, the report.

A benchmark is a module with ``run(ctx: Context) -> list[Result]``. It measures bankhub and a
baseline that shows what this machine can do (a bare app, a raw insert, the ideal wall time) on
the same data in the same run, repeats each measurement ``ctx.repeats`` times and reports
medians. Targets are ratios, never absolute timings, so the figures travel between machines.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    met: bool
    note: str = ""
    #: the individual runs whose median ``value`` is
    runs: list[float] = field(default_factory=list)
    #: further figures of the comparison (the read benchmark: every server's)
    detail: dict[str, Any] = field(default_factory=dict)


def at_least(
    name: str, value: float, baseline: float, unit: str, share: float, note: str = ""
) -> Result:
    """``value`` should be at least ``share`` × ``baseline`` (throughputs)."""
    ratio = value / baseline if baseline else 0.0
    return Result(
        name,
        round(value, 3),
        unit,
        round(baseline, 3),
        round(ratio, 3),
        f"≥ {share:g} × baseline",
        ratio >= share,
        note,
    )


def at_most(
    name: str, value: float, baseline: float, unit: str, factor: float, note: str = ""
) -> Result:
    """``value`` should be at most ``factor`` × ``baseline`` (latencies, wall times)."""
    ratio = value / baseline if baseline else float("inf")
    return Result(
        name,
        round(value, 3),
        unit,
        round(baseline, 3),
        round(ratio, 3),
        f"≤ {factor:g} × baseline",
        ratio <= factor,
        note,
    )


def absolute(
    name: str, value: float, unit: str, limit: float, *, lower_is_better: bool, note: str = ""
) -> Result:
    """An absolute bound of the targets (memory, deliveries per second) with no baseline."""
    met = value <= limit if lower_is_better else value >= limit
    sign = "≤" if lower_is_better else "≥"
    return Result(name, round(value, 3), unit, None, None, f"{sign} {limit:g} {unit}", met, note)


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """CPU time (user + system) of process ``pid`` and every live descendant, from /proc;
    ``reaped``: also what its children that ended and were waited for used (a server whose
    workers come and go, such as PostgreSQL's postmaster)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending, seen = [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            if reaped and current == pid:
                total += (int(fields[13]) + int(fields[14])) / tick
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total


@dataclass
class Context:
    """What a benchmark may use: sizes, repeats, a work dir, a PostgreSQL server, wrk."""

    work: Path
    tiny: bool = False
    repeats: int = 3
    postgres_url: str | None = None
    #: the PostgreSQL server's postmaster, whose CPU time a benchmark may read
    postgres_pid: int | None = None
    wrk: str | None = None
    notes: list[str] = field(default_factory=list)
    #: the concurrency benchmark's number of logins, when not its full or tiny size
    logins: int | None = None
    #: where reports and profiles go (``--results``)
    results: Path = RESULTS
    #: record py-spy profiles where a benchmark does (full-size runs)
    profile: bool = False
    #: why a benchmark ran below full size, by benchmark (``--tiny`` or a budget cut); set by
    #: the benchmark, written into ``latest.json``
    partial: dict[str, str] = field(default_factory=dict)

    def size(self, full: int, tiny: int) -> int:
        return tiny if self.tiny else full

    def python(self) -> str:
        return sys.executable

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
        env.update({"BANKHUB_ENV": "test", "BANKHUB_SECRET_KEY": "bench-pepper-" + "b" * 40})
        env.update(extra)
        return env


@contextmanager
def server(
    command: list[str],
    env: dict[str, str],
    port: int,
    *,
    path: str = "/healthz",
    timeout: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start an HTTP server process on 127.0.0.1:``port`` and wait until ``path`` answers."""
    import httpx

    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=ROOT)  # noqa: S603
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1.0).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command!r} did not start")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def find_wrk() -> str | None:
    return shutil.which("wrk")


class LoadSampler:
    """The machine's 1-minute load average, sampled every ``every`` seconds while a benchmark
    runs (a thread): what else shared the CPUs with it."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(round(os.getloadavg()[0], 2))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(round(os.getloadavg()[0], 2))

    def summary(self) -> dict[str, Any]:
        samples = self.samples or [round(os.getloadavg()[0], 2)]
        return {"min": min(samples), "max": max(samples), "samples": len(samples)}


@dataclass
class Run:
    """One benchmark's part of a run: its results, the load while it ran, whether it was full."""

    name: str
    results: list[Result]
    load: dict[str, Any]
    seconds: float
    #: None at full size, else why not
    partial: str | None = None


def report(runs: list[Run], notes: list[str], elapsed: float, not_run: list[str]) -> dict[str, Any]:
    """``latest.json``: the machine, each benchmark's load and size, every result with its runs.

    ``not_run``: the benchmarks of the suite this run left out; with any, or with a benchmark
    below full size, the file says it is partial."""
    return {
        "machine": {"cpus": os.cpu_count()},
        "partial": bool(not_run) or any(r.partial for r in runs),
        "not_run": not_run,
        "benchmarks": {
            run.name: {
                "load_average_1m": run.load,
                "seconds": round(run.seconds),
                "full_size": run.partial is None,
                **({"partial": run.partial} if run.partial else {}),
                "results": [asdict(r) for r in run.results],
            }
            for run in runs
        },
        "notes": notes,
        "seconds": round(elapsed),
    }


def write_report(
    runs: list[Run], notes: list[str], elapsed: float, out: Path, not_run: list[str]
) -> str:
    from bench.table import table

    out.mkdir(parents=True, exist_ok=True)
    document = report(runs, notes, elapsed, not_run)
    (out / "latest.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    extra = [f"- {r.name}: {r.note}" for run in runs for r in run.results if r.note]
    extra += [f"- {n}" for n in notes]
    body = (
        table(document)
        + ("\n\nNotes:\n" + "\n".join(extra) if extra else "")
        + f"\n\nRun took {elapsed:.0f} s.\n"
    )
    (out / "latest.md").write_text(body)
    return body


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
