"""``bankhub worker``, exactly as an operator runs it, with the concurrency benchmark's slow bank.

    BENCH_REPORT=/path/report.json BANKHUB_DATABASE_URL=postgresql+asyncpg://... \
        python -m bench._concurrency_launch

The slow bank is not one of bankhub's connectors, so this puts it (and its catalogue entry) where
``Hub.build`` takes the defaults from, then runs the ``worker`` command of bankhub's own CLI: its
identity, leases, wake-ups and shutdown on SIGTERM are the production ones. At exit it writes the
bank calls this process made and its peak RSS (``VmHWM``) to ``BENCH_REPORT``.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

from bankhub import cli
from bankhub import hub as hub_module
from bankhub.catalogue import Catalogue
from bankhub.connectors.registry import ConnectorRegistry
from bench._concurrency_bank import SlowBank, catalogue, registry
from bench._concurrency_worker import peak_rss_mb


def _registry() -> ConnectorRegistry:
    return registry()


def _catalogue(*, dev: bool = True) -> Catalogue:
    return catalogue(Path(os.environ["BANKHUB_DATA_DIR"]))


def _report() -> None:
    Path(os.environ["BENCH_REPORT"]).write_text(
        json.dumps({"calls": SlowBank.calls, "max_rss_mb": peak_rss_mb()})
    )


if __name__ == "__main__":
    hub_module.default_registry = _registry  # type: ignore[assignment]
    hub_module.default_catalogue = _catalogue  # type: ignore[assignment]
    atexit.register(_report)
    sys.argv = ["bankhub", "worker"]
    cli.main()
