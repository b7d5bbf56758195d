"""A lock between processes, for one-time set-up that parallel test workers share.

Under ``pytest -n`` several worker processes may want the same download or install in the
gitignored ``.cache`` at once; whoever holds the lock does it, the others wait and then find it
done. The lock is ``flock`` on a file beside the target, released when its holder exits, so a
killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
