"""GoCardless Bank Account Data around its connector: secrets, the token pair, the institutions.

- The operator's secret id and key are stored encrypted under the keyring in the one row of
  ``gocardless_settings`` (``bankhub banks gocardless-secret``), never in a log line.
- :class:`DbTokenVault` keeps the provider's token pair in the same row for every login and
  every process; ``connectors.gocardless.tokens.TokenKeeper`` decides when to renew it.
- :func:`import_institutions` reads the provider's institution list for each enabled country and
  imports it through :func:`bankhub.banks.services.import_records` (stable service ids, new banks
  disabled until the operator enables them), and :class:`InstitutionRefresh` does so once a day
  as a sweep of the background loop, claimed by one runner with a conditional update.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.banks.formats import DEFAULT_COLOR, BankRecord
from bankhub.banks.logos import IMPORT_BUDGET, LogoFetcher, refresh_logos
from bankhub.banks.models import GoCardlessSettings
from bankhub.banks.services import ImportOutcome, import_records
from bankhub.clock import Clock, as_utc
from bankhub.connectors.base import ConnectorFailure
from bankhub.connectors.gocardless.client import (
    GoCardlessClient,
    Secrets,
    TokenPair,
)
from bankhub.connectors.gocardless.tokens import Stored, TokenKeeper
from bankhub.db.engine import Database
from bankhub.security.crypto import Cipher, associated_data

log = logging.getLogger("bankhub.banks.gocardless")

ROW_ID = 1
SOURCE = "gocardless"
CONNECTOR = "gocardless"
#: how often the institution lists are imported again
REFRESH_EVERY = timedelta(days=1)
#: a failed import is tried again after this long, not a day later
RETRY_AFTER = timedelta(hours=1)
_FIELDS = ("secret_id", "secret_key", "access", "refresh")


class GoCardlessError(Exception):
    """An operator's request about GoCardless cannot be carried out (not configured, ...)."""


def _aad(name: str) -> bytes:
    return associated_data("-", "gocardless_settings", name, ROW_ID)


async def _row(session: AsyncSession, clock: Clock, *, lock: bool = False) -> GoCardlessSettings:
    """The settings row, made on first use (two first uses meet at the conflict clause)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(GoCardlessSettings)
        .values(id=ROW_ID, token_version=0, updated_at=clock())
        .on_conflict_do_nothing(index_elements=[GoCardlessSettings.id])
    )
    query = sa.select(GoCardlessSettings).where(GoCardlessSettings.id == ROW_ID)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one()


async def set_secrets(
    session: AsyncSession, box: Cipher, clock: Clock, secret_id: str, secret_key: str
) -> None:
    """Store the operator's secrets; the old token pair is dropped (it may be another
    account's), so the next call obtains a pair with the new secrets."""
    secret_id, secret_key = secret_id.strip(), secret_key.strip()
    if not secret_id or not secret_key:
        raise GoCardlessError("both the secret id and the secret key are needed")
    row = await _row(session, clock, lock=True)
    row.secret_id_enc = box.encrypt_text(secret_id, _aad("secret_id"))
    row.secret_key_enc = box.encrypt_text(secret_key, _aad("secret_key"))
    row.access_enc = row.refresh_enc = None
    row.access_expires_at = row.refresh_expires_at = None
    row.token_version += 1
    row.institutions_due_at = clock()
    row.updated_at = clock()
    await session.flush()


async def configured(session: AsyncSession) -> bool:
    row = await session.get(GoCardlessSettings, ROW_ID)
    return row is not None and bool(row.secret_id_enc and row.secret_key_enc)


class DbTokenVault:
    """The token pair in ``gocardless_settings``, stored over the version it was read at."""

    def __init__(self, db: Database, box: Cipher, clock: Clock) -> None:
        self.db = db
        self.box = box
        self.clock = clock

    async def load(self) -> Stored:
        async with self.db.transaction() as session:
            row = await session.get(GoCardlessSettings, ROW_ID)
            if row is None:
                return Stored(None, None, 0)
            secrets = None
            if row.secret_id_enc and row.secret_key_enc:
                secrets = Secrets(
                    self.box.decrypt_text(row.secret_id_enc, _aad("secret_id")),
                    self.box.decrypt_text(row.secret_key_enc, _aad("secret_key")),
                )
            pair = None
            if (
                row.access_enc
                and row.refresh_enc
                and row.access_expires_at
                and row.refresh_expires_at
            ):
                pair = TokenPair(
                    self.box.decrypt_text(row.access_enc, _aad("access")),
                    as_utc(row.access_expires_at),
                    self.box.decrypt_text(row.refresh_enc, _aad("refresh")),
                    as_utc(row.refresh_expires_at),
                )
            return Stored(secrets, pair, row.token_version)

    async def store(self, pair: TokenPair, version: int) -> bool:
        async with self.db.transaction(write=True) as session:
            result = await session.execute(
                sa.update(GoCardlessSettings)
                .where(
                    GoCardlessSettings.id == ROW_ID,
                    GoCardlessSettings.token_version == version,
                )
                .values(
                    access_enc=self.box.encrypt_text(pair.access, _aad("access")),
                    access_expires_at=pair.access_expires_at,
                    refresh_enc=self.box.encrypt_text(pair.refresh, _aad("refresh")),
                    refresh_expires_at=pair.refresh_expires_at,
                    token_version=version + 1,
                    updated_at=self.clock(),
                )
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0) == 1)


@dataclass
class GoCardless:
    """A process's access to the provider: one token keeper, shared by every connector run."""

    db: Database
    box: Cipher
    http: httpx.AsyncClient
    clock: Clock
    base_url: str
    countries: Sequence[str] = ()
    keeper: TokenKeeper = field(init=False)

    def __post_init__(self) -> None:
        self.keeper = TokenKeeper(
            DbTokenVault(self.db, self.box, self.clock), self.http, self.base_url, self.clock
        )

    def options(self) -> dict[str, Any]:
        """What the connector is built with (``SyncEngine.connector_options``)."""
        return {"gocardless_tokens": self.keeper, "gocardless_url": self.base_url}

    async def institutions(self, country: str) -> list[Mapping[str, Any]]:
        client = GoCardlessClient(self.http, self.base_url, self.keeper)
        reply = await client.call("GET", "institutions", stage="read", query={"country": country})
        return (
            [i for i in reply.body if isinstance(i, Mapping)]
            if isinstance(reply.body, list)
            else []
        )

    async def import_institutions(
        self, countries: Iterable[str] | None = None, *, reserved_ids: Iterable[int] = ()
    ) -> tuple[ImportOutcome, list[str]]:
        """Import every enabled country's institutions in one unit of work; the outcome and
        the institutions skipped, each with why."""
        records: list[BankRecord] = []
        skipped: list[str] = []
        for country in countries if countries is not None else self.countries:
            code = country.strip().upper()
            found = institution_records(await self.institutions(code), code)
            records.extend(found.records)
            skipped.extend(found.skipped)
        async with self.db.transaction(write=True) as session:
            outcome = await import_records(session, self.clock, records, reserved_ids=reserved_ids)
        return outcome, skipped


@dataclass(slots=True)
class Institutions:
    records: list[BankRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def institution_records(institutions: Iterable[Mapping[str, Any]], country: str) -> Institutions:
    """The provider's ``Aspsp`` list for ``country`` as bank records keyed by institution id
    (``gocardless:<id>``); an institution listed for several countries is stored once per
    country, since the catalogue lists a bank under one country."""
    found = Institutions()
    for line, node in enumerate(institutions, start=1):
        institution_id = node.get("id")
        name = node.get("name")
        if not isinstance(institution_id, str) or not institution_id.strip():
            found.skipped.append(f"{country} #{line}: no institution id")
            continue
        if not isinstance(name, str) or not name.strip():
            found.skipped.append(f"{country} {institution_id}: no name")
            continue
        bic = node.get("bic")
        bic = bic.strip().upper() if isinstance(bic, str) else ""
        logo = node.get("logo")
        params: dict[str, Any] = {"institution_id": institution_id.strip()}
        history = _whole(node.get("transaction_total_days"))
        if history:
            params["history_days"] = history
        access = _whole(node.get("max_access_valid_for_days"))
        if access:
            params["consent_days"] = access
        found.records.append(
            BankRecord(
                key=f"{SOURCE}:{country}:{institution_id.strip()}"[:160],
                line=line,
                source=SOURCE,
                name=name.strip()[:200],
                bic=bic[:11],
                blz=None,
                country_code=country,
                connector=CONNECTOR,
                params=params,
                logo_url=logo.strip()
                if isinstance(logo, str) and logo.startswith("https://")
                else None,
                color_primary=DEFAULT_COLOR[0],
                color_secondary=DEFAULT_COLOR[1],
            )
        )
    return found


def _whole(raw: Any) -> int | None:
    """The provider's day counts come as strings (``"730"``) or numbers."""
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


class InstitutionRefresh:
    """The daily import of the institution lists, as a sweep of the background loop. Every
    runner may sweep; the one whose conditional update moves ``institutions_due_at`` on does
    the import, the others find nothing due."""

    name = "gocardless-institutions"
    first = False

    def __init__(
        self,
        gocardless: GoCardless,
        every: float = 600.0,
        reserved_ids: Iterable[int] = (),
        logos: LogoFetcher | None = None,
    ) -> None:
        self.gocardless = gocardless
        self.every = every
        self.reserved_ids = tuple(reserved_ids)
        #: fetches the logos due once the institutions are stored (``bankhub.banks.logos``)
        self.logos = logos

    async def _claim(self) -> bool:
        now = self.gocardless.clock()
        async with self.gocardless.db.transaction(write=True) as session:
            row = await session.get(GoCardlessSettings, ROW_ID)
            if row is None or not (row.secret_id_enc and row.secret_key_enc):
                return False
            result = await session.execute(
                sa.update(GoCardlessSettings)
                .where(
                    GoCardlessSettings.id == ROW_ID,
                    sa.or_(
                        GoCardlessSettings.institutions_due_at.is_(None),
                        GoCardlessSettings.institutions_due_at <= now,
                    ),
                )
                .values(institutions_due_at=now + REFRESH_EVERY)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    async def sweep(self) -> ImportOutcome | None:
        if not self.gocardless.countries or not await self._claim():
            return None
        try:
            outcome, skipped = await self.gocardless.import_institutions(
                reserved_ids=self.reserved_ids
            )
        except (ConnectorFailure, httpx.HTTPError, OSError) as exc:
            # the provider's own words (never a secret or a token); the next runner tries
            # again in an hour, not in a day
            reason = exc.message if isinstance(exc, ConnectorFailure) else type(exc).__name__
            log.warning("importing the GoCardless institutions failed: %s", reason)
            async with self.gocardless.db.transaction(write=True) as session:
                row = await _row(session, self.gocardless.clock, lock=True)
                row.institutions_due_at = self.gocardless.clock() + RETRY_AFTER
            return None
        log.info(
            "GoCardless institutions imported: %d added, %d updated, %d unchanged, %d skipped",
            len(outcome.added),
            len(outcome.updated),
            outcome.unchanged,
            len(skipped),
        )
        if self.logos is not None:
            await refresh_logos(
                self.gocardless.db, self.gocardless.clock, self.logos, budget=IMPORT_BUDGET
            )
        return outcome
