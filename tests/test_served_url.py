"""Links printed by commands point at the serve running on the data dir (``base_url``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bankhub import supervision
from bankhub.cli_common import base_url
from bankhub.config import Settings


def _settings(data_dir: Path, **extra: object) -> Settings:
    return Settings(data_dir=data_dir, env="test", database_url=None, **extra)  # type: ignore[arg-type]


def test_a_live_serve_s_address_wins_over_the_configured_port(tmp_path: Path) -> None:
    held = supervision.lock_data_dir(tmp_path)
    try:
        held.note("http://127.0.0.1:9123")
        assert supervision.served_url(tmp_path) == "http://127.0.0.1:9123"
        assert base_url(_settings(tmp_path, port=8000)) == "http://127.0.0.1:9123"
        # a configured public URL is what partners reach: it wins over the local address
        public = _settings(tmp_path, public_url="https://hub.example.com/")
        assert base_url(public) == "https://hub.example.com"
    finally:
        held.release()


def test_the_address_of_a_serve_that_is_gone_is_not_used(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    (tmp_path / supervision.SERVE_LOCK).write_text(f"{gone.stdout.strip()}\nhttp://127.0.0.1:9\n")
    assert supervision.served_url(tmp_path) is None
    assert base_url(_settings(tmp_path, host="::1", port=8123)) == "http://[::1]:8123"


def test_a_lock_with_only_a_pid_names_no_address(tmp_path: Path) -> None:
    (tmp_path / supervision.SERVE_LOCK).write_text(f"{os.getpid()}\n")
    assert supervision.served_url(tmp_path) is None
