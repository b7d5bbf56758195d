"""Prometheus metrics of a bankhub process, correct when several processes share a host.

What is counted where it happens (``prometheus-client`` metrics):

* ``bankhub_http_request_duration_seconds{method, route, status}``: every HTTP answer, by the
  route's template (``/v2/event/{event_id:int}``), never the raw path: ids in paths would make a
  series per customer. A path no route matches is ``route="unmatched"``.
* ``bankhub_sync_duration_seconds{connector, kind, outcome}``: each refresh of a login, from its
  claim to its outcome written (``kind`` scheduled or manual; ``outcome`` ``ok``,
  ``login_<status>`` as ``sync_runs`` records it, ``lost_lease`` or ``error``).
* ``bankhub_webhook_attempts_total{outcome}``: each delivery attempt (delivered, retry, gone,
  rejected).
* ``bankhub_connect_total{stage}`` (opened, credentials_submitted, succeeded, failed,
  cancelled, abandoned) and ``bankhub_connect_failures_total{reason}`` (the error the
  callback names): the connect page's funnel.

What the database knows (the webhook queue, the lag of due syncs) is read when ``/metrics`` is
scraped (``bankhub.operations.gauges``), so it is right whichever process answers.

Several processes: ``serve`` runs the application in a granian worker beside any number of
``bankhub worker`` processes, and each counts in its own memory. prometheus-client's
multiprocess mode keeps each process's values in files of a shared directory
(``BANKHUB_METRICS_DIR``, by default ``metrics`` in the data dir), and a scrape adds them up.
:func:`prepare` chooses that mode before the first metric exists (prometheus-client decides it
per value when the value is made) and cleans the directory: when no process that wrote to it
is alive any more, everything in it is a previous run's and goes (a clean start, as
Prometheus expects of counters after a restart); while one is, nothing goes, so that the sums
never step back. :func:`process_ended` does the library's bookkeeping for a process that ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client import multiprocess as prometheus_multiprocess

log = logging.getLogger("bankhub.metrics")

#: prometheus-client's own variable; bankhub sets it from ``BANKHUB_METRICS_DIR``
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: ``counter_1234.db``, ``histogram_1234.db``, ``gauge_livesum_1234.db``: the writer's pid last
_WRITER = re.compile(r"_(\d+)\.db$")

#: answers take milliseconds; a slow bank behind a connect step or an export takes seconds
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: a sync waits for a bank: seconds to minutes
SYNC_BUCKETS: Final = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

CONNECT_STAGES: Final = (
    "opened",
    "credentials_submitted",
    "succeeded",
    "failed",
    "cancelled",
    "abandoned",
)
UNMATCHED: Final = "unmatched"


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    http_duration: Histogram
    sync_duration: Histogram
    webhook_attempts: Counter
    connect: Counter
    connect_failures: Counter


@lru_cache(maxsize=1)
def get() -> Metrics:
    """This process's metrics, made on first use (after :func:`prepare`, where it is called)."""
    registry = CollectorRegistry(auto_describe=True)
    return Metrics(
        registry=registry,
        http_duration=Histogram(
            "bankhub_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template",
            ("method", "route", "status"),
            buckets=HTTP_BUCKETS,
            registry=registry,
        ),
        sync_duration=Histogram(
            "bankhub_sync_duration_seconds",
            "Time a login's refresh took, from its claim to its outcome written",
            ("connector", "kind", "outcome"),
            buckets=SYNC_BUCKETS,
            registry=registry,
        ),
        webhook_attempts=Counter(
            "bankhub_webhook_attempts",
            "Webhook delivery attempts, by outcome",
            ("outcome",),
            registry=registry,
        ),
        connect=Counter(
            "bankhub_connect",
            "Connect sessions reaching each stage of the connect page",
            ("stage",),
            registry=registry,
        ),
        connect_failures=Counter(
            "bankhub_connect_failures",
            "Connect sessions that failed, by the error their callback names",
            ("reason",),
            registry=registry,
        ),
    )


# --- what the code counts ---------------------------------------------------------------------


def request_served(method: str, route: str, status: int, seconds: float) -> None:
    get().http_duration.labels(method, route, str(status)).observe(seconds)


def sync_finished(connector: str, *, scheduled: bool, outcome: str, seconds: float) -> None:
    kind = "scheduled" if scheduled else "manual"
    get().sync_duration.labels(connector, kind, outcome).observe(seconds)


def webhook_attempt(outcome: str) -> None:
    get().webhook_attempts.labels(outcome).inc()


def connect_stage(stage: str) -> None:
    # a label value outside the funnel's fixed set would start a series of its own
    if stage not in CONNECT_STAGES:
        raise ValueError(f"unknown connect stage {stage!r}")
    get().connect.labels(stage).inc()


def connect_failed(reason: str) -> None:
    get().connect_failures.labels(reason).inc()


# --- several processes -------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    """The shared directory this process counts in, or None when it counts in memory only."""
    given = os.environ.get(MULTIPROC_ENV)
    return Path(given) if given else None


def prepare(directory: Path) -> None:
    """Count in ``directory`` from now on, shared with every process that does the same;
    called by ``serve`` (before granian starts its worker) and ``worker``, before any metric
    is made in the process."""
    if get.cache_info().currsize:
        raise RuntimeError("metrics were made before their directory was chosen")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    clean(directory)
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus-client reads the variable once, when it is imported: bankhub's modules may
    # have imported it before the command knew the data dir
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def clean(directory: Path) -> int:
    """Remove a previous run's files when none of their writers is alive; how many went."""
    files = [path for path in directory.glob("*.db") if _WRITER.search(path.name)]
    writers = {int(match.group(1)) for path in files if (match := _WRITER.search(path.name))}
    if any(_alive(pid) for pid in writers):
        return 0
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(files)


def process_ended() -> None:
    """The library's bookkeeping for a process that stops (its live gauges leave the sums)."""
    directory = multiprocess_dir()
    if directory is not None:
        prometheus_multiprocess.mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]


def collecting_registry() -> CollectorRegistry:
    """What a scrape reads: every process's files in multiprocess mode, else this process's."""
    directory = multiprocess_dir()
    if directory is None:
        return get().registry
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry
