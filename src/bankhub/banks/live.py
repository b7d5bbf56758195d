"""Each process's catalogue kept in step with the imported banks, without a restart.

Every change to the ``banks`` table bumps the ``catalogue_version`` row in the same unit of work.
A process reads that one row at most every ``BANKHUB_CATALOGUE_REFRESH_SECONDS`` (5 s by
default), on the way into a request or a worker's round (``Hub.ready``), and reloads the banks
only when the version differs from the one it holds. A polled counter rather than
``LISTEN``/``NOTIFY``: it works the same on SQLite, costs one indexed read per interval, and a
process that missed a notification cannot stay stale.

At the first round, a process given ``BANKHUB_BANKS_FILE`` imports that file (the same import
as ``bankhub banks import``: a second run changes nothing, so every process may do it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from bankhub.banks import services
from bankhub.banks.formats import Registry, RegistryFileError, read_registry_file
from bankhub.catalogue import Catalogue
from bankhub.clock import Clock
from bankhub.config import ConfigError
from bankhub.db.engine import Database

log = logging.getLogger("bankhub.banks")


class BanksFileError(ConfigError):
    """``BANKHUB_BANKS_FILE`` cannot be read as a registry; the message names the file."""


async def import_file(
    db: Database,
    clock: Clock,
    catalogue: Catalogue,
    path: Path,
    format: str | None = None,
) -> tuple[Registry, services.ImportOutcome]:
    """Read ``path`` and store its banks in one unit of work (a second try if another process
    stored the same new banks at the same moment: then nothing is left to add)."""
    registry = read_registry_file(path, format)
    for attempt in (1, 2):
        try:
            async with db.transaction(write=True) as session:
                outcome = await services.import_records(
                    session, clock, registry.records, reserved_ids=catalogue.base_ids
                )
            return registry, outcome
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class LiveCatalogue:
    """Merges the imported banks into ``catalogue`` and keeps them current (module docs)."""

    def __init__(
        self,
        catalogue: Catalogue,
        clock: Clock,
        *,
        refresh_seconds: float,
        banks_file: Path | None = None,
        banks_format: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalogue = catalogue
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.banks_file = banks_file
        self.banks_format = banks_format
        #: injected so that tests move time instead of sleeping
        self.monotonic = monotonic
        self._checked_at = float("-inf")
        self._started = False
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Check the version at the next :meth:`ensure` (this process changed the banks)."""
        self._checked_at = float("-inf")

    def _fresh(self) -> bool:
        return self.monotonic() - self._checked_at < self.refresh_seconds

    async def ensure(self, db: Database) -> None:
        if self._fresh():
            return
        if self._lock.locked() and self.catalogue.version is not None:
            return  # another task is reloading; meanwhile the banks loaded before serve
        async with self._lock:
            if self._fresh():
                return
            if not self._started:
                await self._import_settings_file(db)
                self._started = True
            async with db.transaction() as session:
                version = await services.current_version(session)
                if version != self.catalogue.version:
                    self.catalogue.set_imported(await services.load_services(session), version)
                    log.info("catalogue: imported banks at version %s loaded", version)
            self._checked_at = self.monotonic()

    async def _import_settings_file(self, db: Database) -> None:
        if self.banks_file is None:
            return
        try:
            registry, outcome = await import_file(
                db, self.clock, self.catalogue, self.banks_file, self.banks_format
            )
        except RegistryFileError as exc:
            raise BanksFileError(f"BANKHUB_BANKS_FILE {self.banks_file}: {exc}") from None
        for refusal in registry.refusals:
            log.warning(
                "BANKHUB_BANKS_FILE %s line %d skipped: %s",
                self.banks_file,
                refusal.line,
                refusal.reason,
            )
        log.info(
            "BANKHUB_BANKS_FILE %s: %d rows, %d banks added, %d updated, %d unchanged, %d refused",
            self.banks_file,
            registry.rows,
            len(outcome.added),
            len(outcome.updated),
            outcome.unchanged,
            len(registry.refusals),
        )
