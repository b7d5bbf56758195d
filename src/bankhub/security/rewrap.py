"""Re-encrypting stored values under the primary data key (``bankhub keys rewrap``, S21).

Every encrypted column is listed here once. The rewrap walks each in primary-key order, in
small units of work; a value is replaced only if it is still the one that was read (compare
and set), so a request writing the same row meanwhile is never overwritten, and a run that is
stopped can simply be started again: what is already under the primary key is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from bankhub.db.engine import Database
from bankhub.security.crypto import associated_data
from bankhub.security.keyring import Keyring


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    table: str
    column: str
    #: the column name bound into the associated data
    aad_column: str
    key: str = "id"
    tenant: str | None = "app_id"

    def aad(self, tenant: Any, row: Any) -> bytes:
        return associated_data(
            "-" if self.tenant is None else tenant, self.table, self.aad_column, row
        )

    def sql(self) -> Any:
        columns: list[sa.ColumnClause[Any]] = [sa.column(self.key), sa.column(self.column)]
        if self.tenant:
            columns.append(sa.column(self.tenant))
        return sa.table(self.table, *columns)


ENCRYPTED: tuple[EncryptedColumn, ...] = (
    EncryptedColumn("logins", "connector_state_enc", "connector_state"),
    EncryptedColumn("logins", "vault_credentials_enc", "vault_credentials"),
    EncryptedColumn("accounts", "iban_enc", "iban"),
    EncryptedColumn("accounts", "number_enc", "number"),
    EncryptedColumn("accounts", "holder_name_enc", "holder_name"),
    EncryptedColumn("webhook_endpoints", "secret_enc", "secret"),
    EncryptedColumn("webhook_endpoints", "previous_secret_enc", "previous_secret"),
    EncryptedColumn("signing_keys", "private_key_enc", "private_key", key="kid", tenant=None),
    EncryptedColumn("idempotency_keys", "response_enc", "response"),
    EncryptedColumn("members", "totp_seed_enc", "totp_seed", tenant=None),
    EncryptedColumn("smtp_settings", "password_enc", "password", tenant=None),
)

Progress = Callable[[str, int], None]


@dataclass
class RewrapReport:
    rewrapped: int = 0
    #: values changed by someone else between our read and our write (already re-encrypted)
    raced: int = 0
    #: legacy plain-text connector states encrypted for the first time
    sealed_plain: int = 0
    per_column: dict[str, int] = field(default_factory=dict)


async def count_using(db: Database, kid: str | None = None, *, not_kid: str | None = None) -> int:
    """How many stored values are under ``kid`` (or under anything but ``not_kid``)."""
    total = 0
    async with db.transaction() as session:
        for spec in ENCRYPTED:
            t = spec.sql()
            col = t.c[spec.column]
            query = sa.select(sa.func.count()).select_from(t).where(col.is_not(None))
            if kid is not None:
                query = query.where(col.like(f"v1.{kid}.%"))
            if not_kid is not None:
                query = query.where(sa.not_(col.like(f"v1.{not_kid}.%")))
            total += int((await session.execute(query)).scalar_one())
    return total


async def _seal_plain_states(db: Database, keyring: Keyring, batch: int) -> int:
    """Connector states written before encryption at rest: encrypt them now."""
    logins = sa.table(
        "logins",
        sa.column("id"),
        sa.column("app_id"),
        sa.column("connector_state", sa.JSON),
        sa.column("connector_state_enc"),
    )
    sealed, last = 0, 0
    while True:
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    sa.select(logins.c.id, logins.c.app_id, logins.c.connector_state)
                    .where(logins.c.connector_state_enc.is_(None), logins.c.id > last)
                    .order_by(logins.c.id)
                    .limit(batch)
                )
            ).all()
            if not rows:
                return sealed
            for login_id, app_id, state in rows:
                last = login_id
                if not state:
                    continue
                aad = associated_data(app_id, "logins", "connector_state", login_id)
                sealed_value = keyring.encrypt(json.dumps(state).encode(), aad)
                result = await session.execute(
                    sa.update(logins)
                    .where(logins.c.id == login_id, logins.c.connector_state_enc.is_(None))
                    .values(connector_state_enc=sealed_value, connector_state={})
                )
                sealed += int(getattr(result, "rowcount", 0) or 0)


async def rewrap(
    db: Database, keyring: Keyring, *, batch: int = 200, progress: Progress | None = None
) -> RewrapReport:
    await keyring.refresh(db)
    primary = keyring.primary
    report = RewrapReport(sealed_plain=await _seal_plain_states(db, keyring, batch))
    for spec in ENCRYPTED:
        t = spec.sql()
        col, key = t.c[spec.column], t.c[spec.key]
        tenant = t.c[spec.tenant] if spec.tenant else sa.literal("-")
        name = f"{spec.table}.{spec.column}"
        done, last = 0, None
        while True:
            async with db.transaction() as session:
                query = (
                    sa.select(key, tenant, col)
                    .where(col.is_not(None), sa.not_(col.like(f"v1.{primary}.%")))
                    .order_by(key)
                    .limit(batch)
                )
                if last is not None:
                    query = query.where(key > last)
                rows = (await session.execute(query)).all()
                if not rows:
                    break
                for row_key, row_tenant, value in rows:
                    aad = spec.aad(row_tenant, row_key)
                    if not keyring.knows(value):
                        await keyring.refresh(db)  # a key added by another process
                    fresh = keyring.encrypt(keyring.decrypt(value, aad), aad)
                    result = await session.execute(
                        sa.update(t)
                        .where(key == row_key, col == value)
                        .values({spec.column: fresh})
                    )
                    if getattr(result, "rowcount", 1) == 1:
                        done += 1
                    else:
                        report.raced += 1
                last = rows[-1][0]
            if progress is not None:
                progress(name, done)
        report.per_column[name] = done
        report.rewrapped += done
    return report
