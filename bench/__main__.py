"""Run every benchmark and write bench/results/latest.json and latest.md.

python -m bench [--tiny] [--only NAME ...] [--repeats N] [--results DIR] [--logins N]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import RESULTS, Context, LoadSampler, Run, find_wrk, write_report

BENCHMARKS = ("read", "ingest", "concurrency", "webhooks", "connect", "connect_hop")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--tiny", action="store_true", help="small sizes: checks the suite runs")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="where latest.json and latest.md go (default bench/results)",
    )
    parser.add_argument(
        "--no-profile",
        action="store_true",
        help="no py-spy profiles (they are recorded in full-size runs by default)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy profiles in a --tiny run too"
    )
    parser.add_argument(
        "--logins",
        type=int,
        default=None,
        help="logins the concurrency benchmark refreshes (default 10,000; 200 with --tiny)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    runs: list[Run] = []
    chosen = args.only or list(BENCHMARKS)
    with tempfile.TemporaryDirectory(prefix="bankhub-bench-") as work:
        ctx = Context(
            work=Path(work),
            tiny=args.tiny,
            repeats=args.repeats or (1 if args.tiny else 3),
            logins=args.logins,
            results=args.results,
            profile=(args.profile or not args.tiny) and not args.no_profile,
        )
        ctx.wrk = find_wrk()
        from tests.support.postgres import PostgresServer

        pg = PostgresServer()
        pg.start()
        try:
            ctx.postgres_url = pg.url
            ctx.postgres_pid = int((pg.datadir / "postmaster.pid").read_text().split()[0])
            for name in chosen:
                print(f"== {name}", flush=True)
                module = importlib.import_module(f"bench.{name}")
                began = time.monotonic()
                with LoadSampler() as load:
                    results = module.run(ctx)
                for result in results:
                    print(
                        f"   {result.name}: {result.value:g} {result.unit} "
                        f"(ratio {result.ratio}) target {result.target} "
                        f"{'met' if result.met else 'MISSED'}",
                        flush=True,
                    )
                partial = "tiny sizes (--tiny)" if args.tiny else ctx.partial.get(name)
                if partial is None and ctx.repeats < 3:
                    partial = f"{ctx.repeats} run(s) per figure (--repeats), not 3"
                runs.append(Run(name, results, load.summary(), time.monotonic() - began, partial))
        finally:
            pg.stop()
    not_run = [name for name in BENCHMARKS if name not in chosen]
    elapsed = time.monotonic() - started
    print(write_report(runs, ctx.notes, elapsed, args.results, not_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
