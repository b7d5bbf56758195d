"""Profile a run with py-spy (sampling, from outside the process) and summarize the top frames.

The raw output (collapsed stacks, one ``frame;frame;... count`` a line, flamegraph.pl's input)
is kept under bench/results/; the summary names the frames that take the most time, by self time
and by inclusive time among bankhub's own frames.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def start_py_spy(pid: int, output: Path, *, duration: int | None = None) -> subprocess.Popen[bytes]:
    py_spy = find_py_spy()
    if py_spy is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking"]
    command += ["--rate", "50", "--output", str(output)]
    if duration is not None:
        command += ["--duration", str(duration)]
    return subprocess.Popen(  # noqa: S603 - our own tool, our own pid
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_py_spy(process: subprocess.Popen[bytes]) -> None:
    """py-spy writes its output when interrupted (or when its duration ends)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _short(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (file.py:123)"
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


#: frames where a thread waits (the event loop's select, aiosqlite's idle worker thread...)
IDLE = ("select (selectors.py", "_connection_worker_thread (core.py:59)", "wait (threading.py")


def summarize(raw: Path, top: int = 6) -> str:
    """Top frames by self time, and bankhub's own frames by inclusive time, in % of samples."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        if any(marker in _short(frames[-1]) for marker in IDLE):
            idle += samples
            continue
        self_time[_short(frames[-1])] += samples
        for frame in set(frames):
            if "bankhub/" in frame and "/bench/" not in frame:
                inclusive[_short(frame)] += samples
    if not total:
        return "py-spy recorded no samples"

    def listing(counter: Counter[str]) -> str:
        return ", ".join(f"{frame} {100 * n / total:.0f}%" for frame, n in counter.most_common(top))

    return (
        f"py-spy ({total} samples, raw stacks in {raw.name} beside the report; "
        f"{100 * idle / total:.0f}% of them threads waiting: event loop select, idle DB thread): "
        "top self time: "
        f"{listing(self_time)}; bankhub frames by inclusive time: {listing(inclusive)}"
    )


def profile_path(results: Path, name: str) -> Path:
    """Where the raw stacks of ``name`` go in the run's ``--results`` (emptied first)."""
    results.mkdir(parents=True, exist_ok=True)
    output = results / f"{name}-profile.txt"
    output.unlink(missing_ok=True)
    return output


async def profile_ingest(measure: Callable[[], Awaitable[object]], output: Path) -> str:
    """Run ``measure`` once more under py-spy attached to this process, its raw stacks into
    ``output`` (:func:`profile_path`); the summary."""
    if find_py_spy() is None:
        return "py-spy is not installed: no profile"
    spy = start_py_spy(os.getpid(), output)
    await asyncio.sleep(1.0)  # let it attach
    try:
        await measure()
    finally:
        stop_py_spy(spy)
    return _summary(output)


def _summary(output: Path) -> str:
    if not output.is_file():
        return "py-spy wrote no profile (ptrace not permitted?)"
    return summarize(output)
