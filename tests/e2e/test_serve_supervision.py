"""``bankhub serve`` and its granian worker live and die together, and one serve holds a SQLite
data dir at a time.

Real processes: ``python -m bankhub serve`` started by the ``live_server`` fixture (in a session
of its own), its worker found among its children in ``/proc``. SIGKILL goes to the ``serve``
process alone, as the OOM killer or an operator's ``kill -9`` would send it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.postgres import free_port
from tests.support.server_plugin import LiveServerFactory

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"
)

ENV = {"BANKHUB_CREATE_DEMO_APP": "false"}


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has stopped everything already)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def within(seconds: float, check: Callable[[], bool]) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def bankhub(
    args: list[str], data_dir: Path, *, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env.update(
        BANKHUB_DATA_DIR=str(data_dir), BANKHUB_ENV="test", NO_COLOR="1", COLUMNS="300", **ENV
    )
    return subprocess.run(
        [sys.executable, "-m", "bankhub", *args],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_kill_9_of_serve_takes_its_worker_and_frees_the_port_and_the_data_dir(
    live_server: LiveServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = live_server(ENV, data_dir=data_dir)
    workers = children(server.proc.pid)
    assert workers, "serve runs its application in a granian worker process"

    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    freed = within(5.0, lambda: refused(server.port))
    gone = within(5.0, lambda: not any(alive(pid) for pid in workers))
    print(f"port refused after {freed:.2f} s, worker gone after {gone:.2f} s")

    # nothing of the old serve holds the data dir: a restart on it starts and answers
    again = live_server(ENV, data_dir=data_dir)
    assert again.running


def test_a_second_serve_on_the_data_dir_refuses_and_other_commands_run_beside_it(
    live_server: LiveServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = live_server(ENV, data_dir=data_dir)

    second = bankhub(["serve", "--port", str(free_port("127.0.0.1"))], data_dir, timeout=30)
    assert second.returncode == 2, second.stdout + second.stderr
    message = " ".join(second.stderr.split())
    assert str(data_dir.resolve()) in message
    assert f"(pid {server.proc.pid})" in message
    assert "bankhub listening" not in second.stdout
    assert server.running

    # the operator's commands share the SQLite file with the serving process
    for args in (["migrate"], ["maintenance", "off"], ["audit"]):
        done = bankhub(args, data_dir)
        assert done.returncode == 0, (args, done.stdout, done.stderr)

    # links printed beside the serve point at it, on the port it was given (not the default)
    invited = bankhub(["team", "invite", "new@example.com"], data_dir)
    assert invited.returncode == 0, invited.stdout + invited.stderr
    assert f"{server.url}/dashboard/invite/" in invited.stdout
    demo = bankhub(["demo"], data_dir)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"curl -X POST {server.url}/v2/customer" in demo.stdout

    # and so does a worker (an API-only serve beside `bankhub worker`, or a second runner)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env.update(BANKHUB_DATA_DIR=str(data_dir), BANKHUB_ENV="test", **ENV)
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bankhub", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        within(30.0, lambda: bool(re.search(r"bankhub worker \S+ running", _read(tmp_path))))
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
    assert proc.returncode == 0, _read(tmp_path)


def _read(tmp_path: Path) -> str:
    return (tmp_path / "worker.log").read_text(errors="replace")
