"""py-spy around a running bankhub process, and the top frames of what it recorded."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LINE = re.compile(r"^(.*) (\d+)$")
#: frames every stack passes through (the interpreter, the CLI, the event loop, threads)
PLUMBING = (
    "<frozen",
    "typer/",
    "click/",
    "asyncio/",
    "threading.py",
    "bankhub/__main__.py",
    "bankhub/cli.py",
    "granian/",
    "multiprocessing/",
)
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextmanager
def profiled(pid: int, out: Path, *, subprocesses: bool = False) -> Iterator[bool]:
    """Sample ``pid`` (and its children) into ``out`` (py-spy's raw, collapsed-stack format).

    Yields whether py-spy runs; a missing py-spy or a refused attach profiles nothing.
    """
    tool = py_spy()
    if tool is None:
        yield False
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [tool, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    command += ["--rate", "200", "--nonblocking"]
    if subprocesses:
        command.append("--subprocesses")
    process = subprocess.Popen(  # noqa: S603
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)  # attaching takes a moment
    try:
        yield process.poll() is None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match.group("file")
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({file})"


def _plumbing(name: str) -> bool:
    file = name.rsplit("(", 1)[-1]
    return file.startswith(PLUMBING)


def summarize(raw: Path, top: int = 12) -> tuple[list[str], list[str], int]:
    """The ``top`` frames by own (leaf) samples and by inclusive samples, as "share name"."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return [], [], 0
    for line in raw.read_text(errors="replace").splitlines():
        match = LINE.match(line)
        if match is None:
            continue
        count = int(match.group(2))
        frames = [_name(f) for f in match.group(1).split(";") if f]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            if not _plumbing(name):
                inclusive[name] += count

    def share(counter: Counter[str]) -> list[str]:
        return [f"{100 * n / total:4.1f}% {name}" for name, n in counter.most_common(top)]

    return share(own), share(inclusive), total


def write_summary(raw: Path, out: Path, title: str) -> tuple[list[str], list[str]]:
    own, inclusive, total = summarize(raw, top=25)
    lines = [f"# {title}", f"samples: {total} (py-spy raw stacks: {raw.name})", "", "## own"]
    lines += [*own, "", "## inclusive (without the interpreter, CLI and event-loop frames)"]
    lines += inclusive
    out.write_text("\n".join(lines) + "\n")
    return own, inclusive
