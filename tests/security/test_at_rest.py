"""S19, S21: transactions' details and accounts' bank ids sealed at rest, keyed dedupe keys, card
numbers masked, rows stored in clear by an older version sealed, data files and keys 0600."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bankhub.accounts import details
from bankhub.accounts.models import Account, Transaction
from bankhub.config import Environment, Settings
from bankhub.connectors.base import AccountRecord, AccountType, TransactionRecord
from bankhub.connectors.sandbox.connector import SandboxConnector
from bankhub.db import tenancy
from bankhub.hub import Hub
from bankhub.jobs.runner import Runner
from bankhub.security import keyring as kr
from bankhub.security import rewrap as rw
from bankhub.security.crypto import DecryptionError
from bankhub.security.pan import luhn_valid, mask_pans, mask_value
from bankhub.security.secrets import SecretHasher
from tests.api.connect_client import connect
from tests.conftest import Harness, upgrade_now

PAN = "4111111111111111"
PAN_SPACED = "5500 0000 0000 0004"
COUNTERPARTY_IBAN = "DE89370400440532013000"


async def _everything(h: Harness, secret: str) -> list[dict[str, Any]]:
    answer = await h.client.get("/v2/transaction", headers=h.headers(login_secret=secret))
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["data"]
    return rows


async def _accounts(h: Harness, secret: str) -> list[dict[str, Any]]:
    answer = await h.client.get("/v2/account", headers=h.headers(login_secret=secret))
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["data"]
    return rows


async def _stored_text(h: Harness) -> str:
    """Every value of the transactions and accounts tables as stored."""
    parts: list[str] = []
    async with h.hub.db.transaction() as session:
        for table in (Transaction.__table__, Account.__table__):
            for row in (await session.execute(select(table))).all():
                parts.extend(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row)
    return "\n".join(parts)


async def test_transaction_details_are_sealed_and_bound_to_their_row(harness: Harness) -> None:
    """Descriptions, merchants, bank ids and meta are one envelope per row under the primary
    data key; the plain columns are empty; an envelope moved to another row does not open."""
    h = harness
    payload = await connect(h, "user_good")
    served = await _everything(h, payload["secret"])
    assert len(served) > 100
    stored = await _stored_text(h)
    for row in served[:200]:
        assert row["description"] not in stored
        assert row["original_id"] not in stored
    async with h.hub.db.transaction() as session:
        rows = (await session.execute(select(Transaction).order_by(Transaction.id))).scalars().all()
    assert all(
        r.details_enc and r.details_enc.startswith(f"v1.{h.hub.keyring.primary}.") for r in rows
    )
    assert all(
        (r.original_id, r.description, r.merchant, r.meta) == (None, None, None, None) for r in rows
    )
    first, second = rows[0], rows[1]
    opened = details.open_sealed(
        h.hub.keyring, first.app_id, first.account_id, first.dedupe_key, first.details_enc or ""
    )
    assert opened.description == next(r["description"] for r in served if r["id"] == first.id)
    with pytest.raises(DecryptionError):
        details.open_sealed(
            h.hub.keyring,
            second.app_id,
            second.account_id,
            second.dedupe_key,
            first.details_enc or "",
        )


async def test_dedupe_keys_and_fingerprints_are_keyed_hashes(harness: Harness) -> None:
    """No stored key holds the bank's id or a plain digest of the content."""
    h = harness
    payload = await connect(h, "user_good")
    served = await _everything(h, payload["secret"])
    keys = details.RowKeys(h.hub.hasher)
    async with h.hub.db.transaction() as session:
        stored = {
            row.id: row
            for row in (
                await session.execute(
                    select(Transaction.id, Transaction.dedupe_key, Transaction.fingerprint)
                )
            ).all()
        }
    for row in served:
        key = stored[row["id"]].dedupe_key
        assert row["original_id"] not in key
        assert key == keys.bank_key(row["original_id"])
    # the keyed hash depends on the pepper: another server secret gives other keys
    stranger = details.RowKeys(SecretHasher(b"another-pepper-" + b"y" * 40))
    assert stranger.bank_key(served[0]["original_id"]) != keys.bank_key(served[0]["original_id"])
    digest = hashlib.sha256(b"2026-01-01|-1.00|EUR|x|0").hexdigest()[:40]
    assert keys.fingerprint(digest) != digest
    assert keys.from_plain("f:" + digest, digest) == (
        keys.content_key(keys.fingerprint(digest)),
        keys.fingerprint(digest),
    )


def _with_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox sends card numbers in a card account's id, number and name, and in a
    transaction's id, text, merchant and meta."""
    accounts, transactions = SandboxConnector.fetch_accounts, SandboxConnector.fetch_transactions

    async def fetch_accounts(connector: SandboxConnector) -> list[AccountRecord]:
        card = AccountRecord(
            bank_id=f"{PAN}:EUR",
            name=f"Visa {PAN_SPACED}",
            type=AccountType.CREDIT_CARD,
            currency="EUR",
            balance=Decimal("-12.50"),
            number=PAN,
        )
        return [*await accounts(connector), card]

    async def fetch_transactions(
        connector: SandboxConnector, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        if account.type != AccountType.CREDIT_CARD or account.number != PAN:
            return await transactions(connector, account, since, until)
        day = connector.context.clock().date()
        return [
            TransactionRecord(
                bank_id=f"auth-{PAN}",
                booking_date=day,
                amount=Decimal("-12.50"),
                currency="EUR",
                description=f"CARD {PAN_SPACED} SHOP BERLIN",
                merchant=f"SHOP {PAN}",
                meta={
                    "card": PAN,
                    "counterparty_iban": COUNTERPARTY_IBAN,
                    "nested": [{"pan": PAN_SPACED}],
                },
            )
        ]

    monkeypatch.setattr(SandboxConnector, "fetch_accounts", fetch_accounts)
    monkeypatch.setattr(SandboxConnector, "fetch_transactions", fetch_transactions)


async def test_card_numbers_are_masked_in_what_is_stored_and_served(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a connector sends, a PAN is served as its first six and last four digits and
    stored no other way (not even inside the envelopes); an IBAN is left whole."""
    h = harness
    _with_cards(monkeypatch)
    payload = await connect(h, "user_good")
    answer = json.dumps(
        [await _accounts(h, payload["secret"]), await _everything(h, payload["secret"])]
    )
    for whole in (PAN, PAN_SPACED, PAN_SPACED.replace(" ", "")):
        assert whole not in answer
    assert "411111******1111:EUR" in answer
    assert "CARD 5500 00** **** 0004 SHOP BERLIN" in answer
    assert COUNTERPARTY_IBAN in answer
    opened: list[str] = []
    async with h.hub.db.transaction() as session:
        for row in (await session.execute(select(*details.PLAIN_COLUMNS))).all():
            opened.append(json.dumps(msgspec_builtins(details.opened(h.hub.keyring, row))))
        for account in (await session.execute(select(Account))).scalars():
            opened.append(str(h.hub.engine.account_details(account)))
            opened.append(str(h.hub.engine.account_bank_id(account)))
            opened.append(account.name)
    everything = "\n".join(opened) + await _stored_text(h)
    for whole in (PAN, PAN_SPACED.replace(" ", ""), PAN_SPACED):
        assert whole not in everything


def msgspec_builtins(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value)


def test_pan_masking_rules() -> None:
    assert mask_pans(f"x {PAN} y") == "x 411111******1111 y"
    assert mask_pans("4111-1111-1111-1111") == "4111-11**-****-1111"
    assert mask_pans("REF 4111111111111112") == "REF 4111111111111112"  # not Luhn-valid
    assert mask_pans("12345678901234567890123") == "12345678901234567890123"  # too long
    # digits that run on from letters belong to a word (a hexadecimal id), not a card number
    assert mask_pans("tx-414d89e7c11713385495002") == "tx-414d89e7c11713385495002"
    assert mask_pans(f"card{PAN}") == f"card{PAN}"
    assert mask_pans(f"card:{PAN}") == "card:411111******1111"
    assert mask_pans(f"IBAN {COUNTERPARTY_IBAN} ok") == f"IBAN {COUNTERPARTY_IBAN} ok"
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert mask_value({PAN: [PAN, 1, None]}) == {"411111******1111": ["411111******1111", 1, None]}


async def _make_plain(h: Harness) -> int:
    """Turn the stored rows back into what an older version stored: details and bank ids in
    the plain columns, ``b:<bank id>`` dedupe keys and plain content digests."""
    made = 0
    async with h.hub.db.transaction() as session:
        rows = (await session.execute(select(*details.PLAIN_COLUMNS))).all()
        for row in rows:
            fields = details.opened(h.hub.keyring, row)
            digest = hashlib.sha256(f"plain-{row.id}".encode()).hexdigest()[:40]
            await session.execute(
                text(
                    "UPDATE transactions SET details_enc = NULL, original_id = :o,"
                    " description = :d, merchant = :m, meta = :x, dedupe_key = :k,"
                    " fingerprint = :f WHERE id = :i"
                ),
                {
                    "o": fields.original_id,
                    "d": fields.description,
                    "m": fields.merchant,
                    "x": None if fields.meta is None else json.dumps(fields.meta),
                    "k": f"b:{fields.original_id}",
                    "f": digest,
                    "i": row.id,
                },
            )
            made += 1
        for account in (await session.execute(select(Account))).scalars():
            account.bank_id = h.hub.engine.account_bank_id(account)
            account.bank_id_enc = None
    return made


async def _plain_count(h: Harness) -> int:
    return await rw.count_plain(h.hub.db)


async def test_rows_stored_in_clear_are_sealed_by_rewrap_and_read_the_same(
    harness: Harness,
) -> None:
    """An upgraded installation: rows from before are served as before, `keys rewrap` seals
    them (keys keyed, details sealed, plain columns emptied), a refresh afterwards finds them
    again (no duplicate), and after a rotation with rewrap and retirement everything opens."""
    h = harness
    payload = await connect(h, "user_dynamic")
    secret = payload["secret"]
    before = await _everything(h, secret)
    accounts = await _accounts(h, secret)
    assert await _make_plain(h) == len(before)
    assert await _plain_count(h) == len(before) + len(accounts)
    assert await _everything(h, secret) == before  # served from the plain columns meanwhile
    report = await rw.rewrap(h.hub.db, h.hub.keyring, hasher=h.hub.hasher)
    assert report.sealed_plain == len(before) + len(accounts)
    assert await _plain_count(h) == 0
    assert await _everything(h, secret) == before
    assert await _accounts(h, secret) == accounts
    stored = await _stored_text(h)
    assert not [r for r in before if r["description"] in stored]

    h.clock.advance(hours=7)
    refreshed = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=secret), json={}
    )
    assert refreshed.status_code == 200, refreshed.text
    after = await _everything(h, secret)
    ids = [r["original_id"] for r in after]
    assert len(ids) == len(set(ids))
    assert {r["id"] for r in before} - {r["id"] for r in after} <= {
        r["id"] for r in before if (r["meta"] or {}).get("status") == "pending"
    }

    hub = h.hub
    old = hub.keyring.primary
    async with hub.db.transaction() as session:
        kid = await kr.add_key(session, hub.keyring, hub.clock())
        await kr.promote(session, kid, hub.clock())
    await rw.rewrap(hub.db, hub.keyring, hasher=hub.hasher)
    async with hub.db.transaction() as session:
        await kr.retire(session, old, hub.clock(), await rw.count_using(hub.db, old))
    await hub.keyring.refresh(hub.db)
    assert await _everything(h, secret) == after
    assert [a["original_id"] for a in await _accounts(h, secret)] == [
        a["original_id"] for a in accounts
    ]


async def test_a_sync_seals_the_plain_rows_it_reads_and_the_sweep_the_rest(
    harness: Harness,
) -> None:
    """Without `keys rewrap`: the next refresh seals the rows of its window before matching
    (so it finds them: no duplicate), and the runner's sweep seals whatever is left."""
    h = harness
    payload = await connect(h, "user_good")
    secret = payload["secret"]
    before = await _everything(h, secret)
    await _make_plain(h)
    h.clock.advance(hours=7)
    refreshed = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=secret), json={}
    )
    assert refreshed.status_code == 200, refreshed.text
    after = await _everything(h, secret)
    assert sorted(r["original_id"] for r in after) == sorted(r["original_id"] for r in before)
    left = await _plain_count(h)
    assert 0 < left < len(before)  # the refresh window sealed, older rows not yet
    with tenancy.everything():  # as the runner works
        await Runner(h.hub).housekeeping.sweep()
    assert await _plain_count(h) == 0
    assert await _everything(h, secret) == after


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_files_and_keys_are_created_for_their_owner_only(tmp_path: Path) -> None:
    """The data dir is 0700; the SQLite file, its WAL and shared memory, and the dev secret key
    (from which the dev KEK is derived) are 0600 from the start; an older world-readable
    database file is narrowed."""
    data = tmp_path / "data"
    settings = Settings(env=Environment.DEV, data_dir=data)
    settings.resolved_secret_key()
    assert _mode(data) == 0o700
    assert _mode(data / "secret.key") == 0o600
    url = settings.resolved_database_url()
    upgrade_now(url)
    hub = Hub.build(settings)
    try:
        await hub.ready()
        async with hub.db.transaction() as session:
            await session.execute(text("SELECT count(*) FROM transactions"))
            files = sorted(data.glob("bankhub.sqlite3*"))
            assert {f.name for f in files} >= {"bankhub.sqlite3", "bankhub.sqlite3-wal"}
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        await hub.close()
    database = data / "bankhub.sqlite3"
    database.chmod(0o644)
    upgrade_now(url)
    assert _mode(database) == 0o600
    (data / "secret.key").chmod(0o644)
    settings.resolved_secret_key()
    assert _mode(data / "secret.key") == 0o600
