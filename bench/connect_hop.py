"""Connect hop: what a connect step costs when it reaches the process that does not hold its
session and is passed on to the one that does (docs/operations.md, "Connect sessions across
processes").

Two real ``bankhub serve`` processes A and B on one fresh PostgreSQL database (API only, one
secret key; each passes connect steps on to the other at its own address, ``serve``'s default).
A connect link is opened on A; then ``GET /v2/connect/session`` (the consent page) is timed at
the client, sent to A (served where the session lives: the baseline) and to B (the session is
looked up in the database and the request passed on to A, whose answer B sends back),
alternating, after a warm-up.

Target (absolute, as the connect benchmark's): p99 of the passed-on step ≤ 20 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from bench._connect_driver import Served, create_app, new_connect_url
from bench.harness import Context, Result, absolute, free_port, percentile, server
from bench.webhooks import postgres_url

TARGET_P99_MS = 20.0
WARM_UP = 50


def _timed(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    answer = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200 or "asks to read your bank data" not in answer.text:
        raise RuntimeError(f"not the consent page: {answer.status_code} {answer.text[:300]}")
    return elapsed


def run(ctx: Context) -> list[Result]:
    if not ctx.postgres_url:
        ctx.notes.append("connect_hop: skipped, no PostgreSQL server")
        return []
    count = ctx.size(1000, 50)
    url = postgres_url(ctx, ctx.postgres_url)
    work = Path(ctx.work) / f"connect-hop-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    env = ctx.env(
        BANKHUB_DATABASE_URL=url,
        BANKHUB_DATA_DIR=str(work),
        BANKHUB_EMBEDDED_WORKER="false",
        BANKHUB_CREATE_DEMO_APP="false",
    )
    subprocess.run(  # noqa: S603
        [ctx.python(), "-m", "bankhub", "migrate"], env=env, capture_output=True, check=True
    )
    creds = create_app(ctx, env)
    a_port, b_port = free_port(), free_port()

    def command(port: int) -> list[str]:
        return [ctx.python(), "-m", "bankhub", "serve", "--host", "127.0.0.1", "--port", str(port)]

    started = time.monotonic()
    with (
        server(command(a_port), env, a_port) as a_process,
        server(command(b_port), env, b_port),
    ):
        a = Served(f"http://127.0.0.1:{a_port}", creds, a_process)
        b_base = f"http://127.0.0.1:{b_port}"
        with httpx.Client(timeout=30, trust_env=False, headers={"Accept-Language": "en"}) as client:
            with httpx.Client(base_url=a.base, timeout=30) as api:
                link = new_connect_url(api, a, "hop")
            if client.get(link).status_code != 303:
                raise RuntimeError("the connect link did not open on A")
            direct: list[float] = []
            passed_on: list[float] = []
            for _ in range(WARM_UP):
                _timed(client, f"{a.base}/v2/connect/session")
                _timed(client, f"{b_base}/v2/connect/session")
            for _ in range(count):
                direct.append(_timed(client, f"{a.base}/v2/connect/session"))
                passed_on.append(_timed(client, f"{b_base}/v2/connect/session"))
    p99 = percentile(passed_on, 99)
    load = os.getloadavg()[0]
    note = (
        f"{count} GET /v2/connect/session each way after {WARM_UP} warm-up; served by the "
        f"owner: median {statistics.median(direct):.1f} ms, p99 {percentile(direct, 99):.1f} ms; "
        f"passed on by the other process: median {statistics.median(passed_on):.1f} ms, p99 "
        f"{p99:.1f} ms (the hop adds {statistics.median(passed_on) - statistics.median(direct):.1f}"
        f" ms at the median: a lookup of the session's owner and a second HTTP request); load "
        f"average {load:.1f} on {os.cpu_count()} CPUs"
    )
    ctx.notes.append(f"connect_hop: the benchmark took {time.monotonic() - started:.0f} s")
    return [
        absolute(
            "connect step passed on, p99", p99, "ms", TARGET_P99_MS, lower_is_better=True, note=note
        )
    ]
