"""Who holds a lease: a process identity that a restarted process recognises as its own.

A lease names its holder ``IDENTITY#INCARNATION`` (a sync's lease adds ``/RUN``, see
``bankhub.sync.refresh.run_token``). The identity stays the same across restarts of "the same"
process; the incarnation is new at every start. So a process that starts knows that a lease
under its identity but another incarnation was left by a predecessor that died, and releases it
at once (``bankhub.jobs.leases.reclaim``) instead of letting its work wait for the lease to lapse.

That is only sound while no two live processes share an identity. On one host the identity is
held by an ``flock`` on a file in the data dir for the life of the process (the kernel drops it
when the process dies, however it dies):

* by default a process takes the first free slot of its role (``worker-0``, ``worker-1``, ...;
  ``serve-0``, ...) and is named ``HOST:ROLE-SLOT:DIR``, ``DIR`` a short digest of the data dir's
  path. A restarted process finds its predecessor's slot free again and takes it;
* ``BANKHUB_WORKER_ID`` names the process instead (for containers, whose host name changes at
  every start: the unit's or pod's stable name). Another live process on this host under the
  same name stops the start; across hosts the operator keeps the names apart.

A process that holds no such lock (tests, one-off runs, a data dir it cannot write) gets an
ephemeral identity and never reclaims anything: its predecessor's leases lapse instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from bankhub.config import Settings
from bankhub.supervision import HeldLock, Locked, hold

#: the directory of the identity locks, in the data dir
LOCKS = "identities"
#: default identities per role and data dir on one host
MAX_SLOTS = 64
#: separates the identity from the incarnation in a lease's holder
INCARNATION = "#"
_HOST_LETTERS = re.compile(r"[^A-Za-z0-9-]")
log = logging.getLogger("bankhub.jobs")


class IdentityTaken(Exception):
    """Another live process on this host runs under ``BANKHUB_WORKER_ID`` already."""


@dataclass
class Identity:
    name: str
    incarnation: str
    #: the lock proving no other live process here has this name (None: ephemeral)
    lock: HeldLock | None = None

    @property
    def owner(self) -> str:
        """What this process writes into the leases it takes."""
        return f"{self.name}{INCARNATION}{self.incarnation}"

    @property
    def held(self) -> bool:
        """Leases under this name but another incarnation are a dead predecessor's."""
        return self.lock is not None

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @classmethod
    def ephemeral(cls) -> Identity:
        return cls(f"{host_name()}:{os.getpid()}", secrets.token_hex(4))


def host_name() -> str:
    return _HOST_LETTERS.sub("", socket.gethostname().split(".")[0])[:20] or "host"


def claim(settings: Settings, role: str) -> Identity:
    """This process's identity for the rest of its life (see the module's text)."""
    try:
        return _claim(settings, role)
    except OSError as exc:
        log.warning(
            "no identity lock in %s (%s): this process cannot take back its predecessor's "
            "leases at start, they lapse after BANKHUB_LEASE_SECONDS instead",
            settings.data_dir,
            exc,
        )
        return Identity.ephemeral()


def _claim(settings: Settings, role: str) -> Identity:
    settings.make_data_dir()
    folder = settings.data_dir / LOCKS
    folder.mkdir(mode=0o700, exist_ok=True)
    incarnation = secrets.token_hex(4)
    if settings.worker_id:
        try:
            lock = hold(folder / f"id-{settings.worker_id}.lock")
        except Locked as taken:
            raise IdentityTaken(
                f"BANKHUB_WORKER_ID={settings.worker_id} is in use by another bankhub process "
                f"on this host (pid {taken.holder or 'unknown'}); give each process its own"
            ) from None
        return Identity(settings.worker_id, incarnation, lock)
    where = hashlib.sha256(str(Path(settings.data_dir).resolve()).encode()).hexdigest()[:8]
    for slot in range(MAX_SLOTS):
        try:
            lock = hold(folder / f"{role}-{slot}.lock")
        except Locked:
            continue
        return Identity(f"{host_name()}:{role}-{slot}:{where}", incarnation, lock)
    raise IdentityTaken(
        f"{MAX_SLOTS} bankhub {role} processes already run on this data dir; "
        "set BANKHUB_WORKER_ID to name this one"
    )
