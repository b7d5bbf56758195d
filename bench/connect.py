"""Connect: server time per connect-page step, excluding the bank.

A real ``bankhub serve`` (SQLite, embedded worker on) and a user clicking through its hosted
connect page over loopback, one flow after another with the sandbox bank's ``user_good``: open
the ``connect_url``, the consent page, the consent POST, the credentials page, the credentials
POST (the sandbox authenticates at once), every progress-page poll while the first fetch runs in
the background, and the final redirect to the callback. Each request is timed at the client; the
bank answers instantly, so there is no bank time to take out (the first fetch is not inside any
step request, though it shares the server's event loop with the polls that overlap it).

Target (absolute): p99 over all step requests ≤ 20 ms.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench._connect_driver import ConnectUser, Served, Steps, new_connect_url, serve
from bench._webhooks_profile import profiled, write_summary
from bench.harness import Context, Result, absolute, percentile

TARGET_P99_MS = 20.0
#: the progress page refreshes itself every second; polling faster keeps the run short and
#: puts more polls next to the first fetch (so, if anything, a harsher p99)
POLL_EVERY = 0.1
WARM_UP = 3


def flows(served: Served, count: int, steps: Steps, label: str) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as api:
        for i in range(count):
            user = ConnectUser(served.base, steps)
            try:
                url = new_connect_url(api, served, f"{label}-{i}")
                callback = user.connect(url, "user_good", poll_every=POLL_EVERY)
            finally:
                user.close()
            if callback.get("status") != "success":
                raise RuntimeError(f"connect did not succeed: {callback}")


def floor_ms(served: Served, count: int = 50) -> float:
    """The client-side time of ``GET /healthz``: the floor any step request stands on."""
    times: list[float] = []
    with httpx.Client(base_url=served.base, timeout=10) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def describe(steps: Steps) -> str:
    order = [
        "open connect_url",
        "consent page",
        "consent POST",
        "credentials page",
        "credentials POST",
        "first progress page",
        "progress poll",
        "final redirect",
    ]
    parts = []
    for name in order:
        values = steps.times.get(name, [])
        if values:
            parts.append(
                f"{name} {statistics.median(values):.1f}/{percentile(values, 99):.1f} ms "
                f"(n={len(values)})"
            )
    return "; ".join(parts)


def run(ctx: Context) -> list[Result]:
    count = ctx.size(100, 10)
    data_dir = Path(tempfile.mkdtemp(prefix="connect-", dir=ctx.work))
    started = time.monotonic()
    with serve(ctx, data_dir) as served:
        flows(served, WARM_UP, Steps(), "warm-up")
        floor = floor_ms(served)
        load = os.getloadavg()[0]
        steps = Steps()
        flows(served, count, steps, "flow")
        every = steps.all()
        p99 = percentile(every, 99)
        slow = sorted(
            (
                (sum(ms > TARGET_P99_MS for ms in values), name)
                for name, values in steps.times.items()
            ),
            reverse=True,
        )
        over = ", ".join(f"{name} {n}" for n, name in slow if n)
        note = (
            f"{count} connect flows with user_good, one after another (after {WARM_UP} "
            f"warm-up flows), progress polled every {POLL_EVERY:g} s; {len(every)} step "
            f"requests, median {statistics.median(every):.1f} ms, p99 {p99:.1f} ms, max "
            f"{max(every):.1f} ms; per step median/p99: {describe(steps)}; over "
            f"{TARGET_P99_MS:g} ms: {over or 'none'}; GET /healthz floor {floor:.1f} ms; load "
            f"average {load:.1f} on {os.cpu_count()} CPUs"
        )
        result = absolute(
            "connect step p99", p99, "ms", TARGET_P99_MS, lower_is_better=True, note=note
        )
        if not result.met and ctx.profile:
            raw = ctx.results / "connect-profile.raw.txt"
            with profiled(served.process.pid, raw, subprocesses=True) as running:
                if running:
                    flows(served, 10, Steps(), "profiled")
            own, inclusive = write_summary(
                raw, ctx.results / "connect-profile.txt", "bankhub serve during connect flows"
            )
            if own:
                ctx.notes.append(
                    "connect: `bankhub serve` under py-spy (bench/results/connect-profile.txt): "
                    f"own {'; '.join(own[:5])} | inclusive {'; '.join(inclusive[:8])}"
                )
    ctx.notes.append(f"connect: the benchmark took {time.monotonic() - started:.0f} s")
    return [result]
