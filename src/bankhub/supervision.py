"""`bankhub serve` as one unit: its granian worker dies with it, and one serve per SQLite data dir.

``serve`` runs the application in a granian worker process, a child of the ``serve`` process. If
``serve`` is killed outright (SIGKILL, the OOM killer), nothing tells that child: it would go on
answering on the port, holding the SQLite file, beside whatever starts next. Two guards:

* the worker asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), set in
  the worker's start-up (``bankhub.app:worker_app``, granian's factory target, calls
  :func:`die_with_parent`), then checks that the
  parent it was started by is still its parent (it may have died in between);
* ``serve`` on SQLite holds an ``flock`` on ``serve.lock`` in the data dir for its whole life
  (the forked worker inherits it). The kernel drops it when the last holder dies, so a crash
  never leaves a stale lock, and a second ``serve`` on the same data dir stops at once with the
  holder's pid.

Our own code because each is a single system call: the parent-death signal has no maintained
Python binding (``python-prctl`` needs libcap headers to build and saw its last release in
2020), and ``filelock`` neither reports the holder nor lets the lock outlive ``fork`` on purpose.
Only Linux has ``PR_SET_PDEATHSIG``; elsewhere the worker logs that it cannot tie itself to the
parent and runs on.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bankhub.supervision")

#: the pid of the ``serve`` process, for its granian worker (set by ``serve`` itself)
PARENT_PID_ENV = "BANKHUB_SERVE_PID"
#: the lock a serving process holds in a SQLite data dir
SERVE_LOCK = "serve.lock"
#: prctl(2) option: the signal this process gets when the thread that made it ends
_PR_SET_PDEATHSIG = 1


class Locked(Exception):
    """Another process holds the lock file ``path``."""

    def __init__(self, path: Path, holder: int | None) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is held by pid {holder if holder else 'unknown'}")


@dataclass
class HeldLock:
    """An ``flock`` held on ``path`` until :meth:`release` or the end of the process."""

    path: Path
    fd: int

    def note(self, text: str) -> None:
        """Write ``text`` as the lock file's second line, after the pid (e.g. the URL served)."""
        os.pwrite(self.fd, f"{os.getpid()}\n{text}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def hold(path: Path) -> HeldLock:
    """Take the exclusive lock on ``path`` (created 0600) without waiting, and write this
    process's pid into it; :class:`Locked` names the holder's pid when another has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _pid_in(fd)
        os.close(fd)
        raise Locked(path, holder) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return HeldLock(path, fd)


def _pid_in(fd: int) -> int | None:
    lines = os.pread(fd, 32, 0).decode(errors="replace").splitlines()
    first = lines[0].strip() if lines else ""
    return int(first) if first.isdigit() else None


class DataDirBusy(Exception):
    """Another ``bankhub serve`` serves this data dir."""

    def __init__(self, data_dir: Path, holder: int | None) -> None:
        self.data_dir = data_dir
        self.holder = holder
        who = f"pid {holder}" if holder else "a process whose pid it did not write yet"
        super().__init__(
            f"the data dir {data_dir} is in use by another bankhub serve ({who}); stop that "
            "one first, or give this one another BANKHUB_DATA_DIR"
        )


def lock_data_dir(data_dir: Path) -> HeldLock:
    """Hold ``serve.lock`` in the (existing) data dir for the life of this process."""
    try:
        return hold(data_dir / SERVE_LOCK)
    except Locked as busy:
        raise DataDirBusy(data_dir.resolve(), busy.holder) from None


def served_url(data_dir: Path) -> str | None:
    """The base URL the ``serve`` that holds ``data_dir``'s lock wrote beside its pid, while
    that process lives; None when no serve runs there (or it wrote none).

    Only reads: taking the lock to test it, even for a moment, could make a ``serve`` starting
    at that instant refuse the data dir as busy."""
    try:
        lines = (data_dir / SERVE_LOCK).read_text(errors="replace").splitlines()
    except OSError:
        return None
    if len(lines) < 2 or not lines[0].strip().isdigit():
        return None
    try:
        os.kill(int(lines[0]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    url = lines[1].strip()
    return url if url.startswith(("http://", "https://")) else None


def die_with_parent(parent: int) -> bool:
    """Ask the kernel to SIGKILL this process when ``parent`` dies; if it already has (this
    process was re-parented before asking), die now. False where the kernel cannot do this."""
    if not sys.platform.startswith("linux"):
        log.warning("this platform has no parent-death signal: the worker may outlive `serve`")
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent:
        # the parent died between starting this process and the prctl above: no signal will come
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def mark_parent() -> None:
    """In ``serve``, before granian starts its worker: name this process as the parent."""
    os.environ[PARENT_PID_ENV] = str(os.getpid())
