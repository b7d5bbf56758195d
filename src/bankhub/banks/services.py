"""Imported banks in the database: import a registry in one unit of work, enable and disable.

Services never commit: the caller's unit of work does, so an import is stored whole or not at
all. Every change bumps the ``catalogue_version`` row, which each process compares with the
version it loaded (``bankhub.banks.live``); an import locks that row first, so two imports run
one after the other instead of both handing out the same service ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.banks.formats import BankRecord
from bankhub.banks.models import VERSION_FLAG, Bank
from bankhub.catalogue import Service, imported_service
from bankhub.clock import Clock
from bankhub.events.models import SystemFlag

#: imported banks' service ids start here, well clear of the shipped catalogue's
FIRST_IMPORTED_ID = 1001


class BankError(Exception):
    """An operator's request about imported banks cannot be carried out (unknown ids, ...)."""


@dataclass(slots=True)
class ImportOutcome:
    """What an import changed: the service ids added and updated, and how many were as stored."""

    added: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated)


async def _version_row(session: AsyncSession, clock: Clock) -> SystemFlag:
    """The version counter, locked for this unit of work (PostgreSQL; SQLite has one writer).
    The first import makes it; two first imports at once meet at the conflict clause, not at
    a unique violation."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(SystemFlag)
        .values(key=VERSION_FLAG, value="0", updated_at=clock())
        .on_conflict_do_nothing(index_elements=[SystemFlag.key])
    )
    query = select(SystemFlag).where(SystemFlag.key == VERSION_FLAG).with_for_update()
    return (await session.execute(query)).scalar_one()


def _bump(row: SystemFlag, clock: Clock) -> None:
    try:
        current = int(row.value)
    except ValueError:
        current = 0
    row.value = str(current + 1)
    row.updated_at = clock()


def _differs(bank: Bank, record: BankRecord) -> bool:
    return (
        bank.source,
        bank.name,
        bank.bic,
        bank.blz,
        bank.country_code,
        bank.connector,
        bank.params,
        bank.logo_url,
        bank.color_primary,
        bank.color_secondary,
    ) != (
        record.source,
        record.name,
        record.bic,
        record.blz,
        record.country_code,
        record.connector,
        record.params,
        record.logo_url,
        record.color_primary,
        record.color_secondary,
    )


def _apply(bank: Bank, record: BankRecord) -> None:
    bank.source = record.source
    bank.name = record.name
    bank.bic = record.bic
    bank.blz = record.blz
    bank.country_code = record.country_code
    bank.connector = record.connector
    bank.params = dict(record.params)
    bank.logo_url = record.logo_url
    bank.color_primary = record.color_primary
    bank.color_secondary = record.color_secondary


async def import_records(
    session: AsyncSession,
    clock: Clock,
    records: Sequence[BankRecord],
    *,
    reserved_ids: Iterable[int] = (),
) -> ImportOutcome:
    """Store ``records`` by their key: a new key is a new bank (disabled, with the next free
    service id above ``reserved_ids``, the catalogue file's), a known key updates its bank in
    place and keeps its id and its enabled switch; a bank the file no longer names is kept."""
    version = await _version_row(session, clock)
    stored = {bank.key: bank for bank in (await session.execute(select(Bank))).scalars()}
    highest = (await session.execute(select(func.max(Bank.id)))).scalar_one_or_none() or 0
    next_id = max(FIRST_IMPORTED_ID - 1, highest, *reserved_ids) + 1
    outcome = ImportOutcome()
    now = clock()
    for record in records:
        bank = stored.get(record.key)
        if bank is None:
            bank = Bank(id=next_id, key=record.key, enabled=False, created_at=now, updated_at=now)
            _apply(bank, record)
            session.add(bank)
            stored[record.key] = bank
            outcome.added.append(next_id)
            next_id += 1
        elif _differs(bank, record):
            _apply(bank, record)
            bank.updated_at = now
            outcome.updated.append(bank.id)
        else:
            outcome.unchanged += 1
    if outcome.changed:
        _bump(version, clock)
    await session.flush()
    return outcome


async def set_enabled(
    session: AsyncSession, clock: Clock, ids: Sequence[int] | None, enabled: bool
) -> list[int]:
    """Enable or disable the banks ``ids`` (None: every imported bank); the ids changed.
    Unknown ids raise :class:`BankError` and change nothing."""
    version = await _version_row(session, clock)
    query = select(Bank)
    if ids is not None:
        query = query.where(Bank.id.in_(ids))
    banks = list((await session.execute(query)).scalars())
    if ids is not None and (missing := sorted(set(ids) - {b.id for b in banks})):
        raise BankError(f"no imported bank has the id {', '.join(map(str, missing))}")
    changed = sorted(b.id for b in banks if b.enabled != enabled)
    now = clock()
    for bank in banks:
        if bank.enabled != enabled:
            bank.enabled = enabled
            bank.updated_at = now
    if changed:
        _bump(version, clock)
    await session.flush()
    return changed


async def list_banks(session: AsyncSession, query: str | None = None) -> list[Bank]:
    """Every imported bank by service id, narrowed to those a search for ``query`` finds."""
    banks = list((await session.execute(select(Bank).order_by(Bank.id))).scalars())
    if not query:
        return banks
    return [b for b in banks if as_service(b).matches(query)]


def as_service(bank: Bank) -> Service:
    return imported_service(
        id=bank.id,
        name=bank.name,
        country_code=bank.country_code,
        connector=bank.connector,
        params={**bank.params, "bic": bank.bic, "blz": bank.blz},
        bic=bank.bic,
        blz=bank.blz,
        color_primary=bank.color_primary,
        color_secondary=bank.color_secondary,
        logo_url=bank.logo_url,
        enabled=bank.enabled,
    )


async def current_version(session: AsyncSession) -> str | None:
    query = select(SystemFlag.value).where(SystemFlag.key == VERSION_FLAG)
    return (await session.execute(query)).scalar_one_or_none()


async def load_services(session: AsyncSession) -> list[Service]:
    """Every imported bank as the catalogue serves it (enabled or not: see ``listed``)."""
    return [as_service(bank) for bank in (await session.execute(select(Bank))).scalars()]
