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

from bankhub.accounts import details
from bankhub.accounts.models import Account, Transaction
from bankhub.db.engine import Database
from bankhub.security.crypto import associated_data
from bankhub.security.keyring import Keyring
from bankhub.security.pan import mask_pans
from bankhub.security.secrets import SecretHasher


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    table: str
    column: str
    #: the column name bound into the associated data
    aad_column: str
    key: str = "id"
    tenant: str | None = "app_id"
    #: the columns naming the row in the associated data, joined by ``:`` (the key when empty)
    row: tuple[str, ...] = ()

    def aad(self, tenant: Any, row: Any) -> bytes:
        return associated_data(
            "-" if self.tenant is None else tenant, self.table, self.aad_column, row
        )

    @property
    def row_columns(self) -> tuple[str, ...]:
        return self.row or (self.key,)

    def aad_of(self, values: Any) -> bytes:
        """The associated data of a row read with :meth:`sql`'s columns (a mapping)."""
        row = ":".join(str(values[name]) for name in self.row_columns)
        return self.aad(values[self.tenant] if self.tenant else "-", row)

    def sql(self) -> Any:
        names = dict.fromkeys([self.key, self.column, *self.row_columns])
        if self.tenant:
            names[self.tenant] = None
        return sa.table(self.table, *(sa.column(name) for name in names))


ENCRYPTED: tuple[EncryptedColumn, ...] = (
    EncryptedColumn("logins", "connector_state_enc", "connector_state"),
    EncryptedColumn("logins", "vault_credentials_enc", "vault_credentials"),
    EncryptedColumn("accounts", "iban_enc", "iban"),
    EncryptedColumn("accounts", "number_enc", "number"),
    EncryptedColumn("accounts", "holder_name_enc", "holder_name"),
    EncryptedColumn("accounts", "bank_id_enc", "bank_id"),
    EncryptedColumn(
        "transactions", "details_enc", details.COLUMN, row=("account_id", "dedupe_key")
    ),
    EncryptedColumn("payments", "details_enc", "details"),
    EncryptedColumn("payments", "connector_state_enc", "connector_state"),
    EncryptedColumn("payment_items", "details_enc", "details", row=("payment_id", "position")),
    EncryptedColumn("webhook_endpoints", "secret_enc", "secret"),
    EncryptedColumn("webhook_endpoints", "previous_secret_enc", "previous_secret"),
    EncryptedColumn("signing_keys", "private_key_enc", "private_key", key="kid", tenant=None),
    EncryptedColumn("idempotency_keys", "response_enc", "response"),
    EncryptedColumn("members", "totp_seed_enc", "totp_seed", tenant=None),
    EncryptedColumn(
        "member_pending", "payload_enc", "payload", tenant=None, row=("session_id", "handle")
    ),
    EncryptedColumn("smtp_settings", "password_enc", "password", tenant=None),
    EncryptedColumn("gocardless_settings", "secret_id_enc", "secret_id", tenant=None),
    EncryptedColumn("gocardless_settings", "secret_key_enc", "secret_key", tenant=None),
    EncryptedColumn("gocardless_settings", "access_enc", "access", tenant=None),
    EncryptedColumn("gocardless_settings", "refresh_enc", "refresh", tenant=None),
)

Progress = Callable[[str, int], None]


@dataclass
class RewrapReport:
    rewrapped: int = 0
    #: values changed by someone else between our read and our write (already re-encrypted)
    raced: int = 0
    #: legacy plain-text connector states, transactions and account bank ids encrypted for
    #: the first time
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


async def _seal_plain_bank_ids(db: Database, keyring: Keyring, batch: int) -> int:
    """Accounts' bank ids stored before they were sealed (statement files made them from the
    IBAN): sealed now, masked like new ones."""
    accounts = sa.table(
        "accounts",
        sa.column("id"),
        sa.column("app_id"),
        sa.column("bank_id"),
        sa.column("bank_id_enc"),
    )
    sealed = 0
    while True:
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    sa.select(accounts.c.id, accounts.c.app_id, accounts.c.bank_id)
                    .where(accounts.c.bank_id.is_not(None))
                    .order_by(accounts.c.id)
                    .limit(batch)
                )
            ).all()
            if not rows:
                return sealed
            for account_id, app_id, bank_id in rows:
                aad = associated_data(app_id, "accounts", "bank_id", account_id)
                result = await session.execute(
                    sa.update(accounts)
                    .where(accounts.c.id == account_id, accounts.c.bank_id == bank_id)
                    .values(bank_id_enc=keyring.encrypt_text(mask_pans(bank_id), aad), bank_id=None)
                )
                sealed += int(getattr(result, "rowcount", 0) or 0)


async def seal_plain_transactions(
    db: Database, keyring: Keyring, hasher: SecretHasher, batch: int, *, limit: int | None = None
) -> int:
    """Transactions stored before their details were sealed: keyed keys, masked details sealed,
    plain columns emptied (``accounts.details.seal_plain_rows``), ``batch`` rows per unit of
    work, up to ``limit`` rows (all when None). A sync seals the rows it reads the same way."""
    keys = details.RowKeys(hasher)
    sealed, last = 0, 0
    while limit is None or sealed < limit:
        size = batch if limit is None else min(batch, limit - sealed)
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    sa.select(*details.PLAIN_COLUMNS)
                    .where(Transaction.details_enc.is_(None), Transaction.id > last)
                    .order_by(Transaction.id)
                    .limit(size)
                )
            ).all()
            if not rows:
                break
            sealed += await details.seal_plain_rows(session, keyring, keys, rows)
            last = rows[-1].id
    return sealed


async def seal_plain(
    db: Database, keyring: Keyring, hasher: SecretHasher, *, batch: int, limit: int
) -> int:
    """Up to ``limit`` account bank ids and transactions stored in clear sealed (the runner's
    sweep); how many."""
    await keyring.ensure(db)
    sealed = await _seal_plain_bank_ids(db, keyring, batch)
    return sealed + await seal_plain_transactions(db, keyring, hasher, batch, limit=limit)


async def count_plain(db: Database) -> int:
    """Stored values not sealed yet (rows from before their columns were encrypted)."""
    async with db.transaction() as session:
        found = 0
        for query in (
            sa.select(sa.func.count()).where(Transaction.details_enc.is_(None)),
            sa.select(sa.func.count()).where(Account.bank_id.is_not(None)),
        ):
            found += int((await session.execute(query)).scalar_one())
    return found


async def rewrap(
    db: Database,
    keyring: Keyring,
    *,
    batch: int = 200,
    progress: Progress | None = None,
    hasher: SecretHasher | None = None,
) -> RewrapReport:
    """Re-encrypt every value under the primary key; first seal what is still plain. The
    transactions' keys are keyed hashes under the server pepper: sealing plain transactions
    takes ``hasher`` (the command passes it; without it they wait for the next call that has
    it, or for the sync that reads them)."""
    await keyring.refresh(db)
    primary = keyring.primary
    sealed = await _seal_plain_states(db, keyring, batch)
    sealed += await _seal_plain_bank_ids(db, keyring, batch)
    if hasher is not None:
        sealed += await seal_plain_transactions(db, keyring, hasher, batch)
    report = RewrapReport(sealed_plain=sealed)
    for spec in ENCRYPTED:
        t = spec.sql()
        col, key = t.c[spec.column], t.c[spec.key]
        name = f"{spec.table}.{spec.column}"
        done, last = 0, None
        while True:
            async with db.transaction() as session:
                query = (
                    sa.select(t)
                    .where(col.is_not(None), sa.not_(col.like(f"v1.{primary}.%")))
                    .order_by(key)
                    .limit(batch)
                )
                if last is not None:
                    query = query.where(key > last)
                rows = (await session.execute(query)).mappings().all()
                if not rows:
                    break
                for values in rows:
                    row_key, value = values[spec.key], values[spec.column]
                    aad = spec.aad_of(values)
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
                last = rows[-1][spec.key]
            if progress is not None:
                progress(name, done)
        report.per_column[name] = done
        report.rewrapped += done
    return report
