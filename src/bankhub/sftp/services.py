"""The SFTP drop's work on the database: who may log in, which customers' folders an app has,
and the import of a dropped file through the very calls ``POST /v2/statement`` makes.

Nothing here knows SSH: the server (``bankhub.sftp.server``) turns these calls and their
typed errors into SFTP statuses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.customers.models import Customer
from bankhub.errors import DomainError, ErrorCode
from bankhub.partners.models import App
from bankhub.sftp.models import DroppedFile
from bankhub.signatures import keys
from bankhub.signatures import services as signature_keys
from bankhub.signatures.models import SignatureKey
from bankhub.statements import ParsedStatement
from bankhub.statements.importer import ImportOutcome, announce_import, import_statement
from bankhub.sync import feed
from bankhub.sync.engine import SyncEngine

#: the ``source`` of the ``statement.imported`` events and audit entries of dropped files
SOURCE = "sftp"
#: the audit action of every dropped file, imported or refused
DROPPED = "statement.dropped"


async def app_by_client_id(session: AsyncSession, client_id: str) -> App | None:
    """The app an SFTP user name names: its ``client-id``, what the partner sends with every
    API request."""
    return (
        await session.execute(select(App).where(App.client_id == client_id))
    ).scalar_one_or_none()


async def login_keys(session: AsyncSession, app_id: int) -> list[SignatureKey]:
    """The keys an app may log in with: its active signature keys, of every source."""
    return await signature_keys.active_keys(session, app_id)


async def customer_by_identifier(
    session: AsyncSession, app_id: int, identifier: str
) -> Customer | None:
    return (
        await session.execute(
            select(Customer).where(Customer.app_id == app_id, Customer.identifier == identifier)
        )
    ).scalar_one_or_none()


async def folders(session: AsyncSession, app_id: int) -> list[str]:
    """The identifiers of the app's customers that have files in the inbox."""
    found = await session.execute(
        select(Customer.identifier)
        .join(DroppedFile, DroppedFile.customer_id == Customer.id)
        .where(DroppedFile.app_id == app_id)
        .distinct()
        .order_by(Customer.identifier)
    )
    return list(found.scalars())


async def files(session: AsyncSession, app_id: int, customer_id: str) -> list[DroppedFile]:
    found = await session.execute(
        select(DroppedFile)
        .where(DroppedFile.app_id == app_id, DroppedFile.customer_id == customer_id)
        .order_by(DroppedFile.name)
    )
    return list(found.scalars())


async def file_named(
    session: AsyncSession, app_id: int, customer_id: str, name: str
) -> DroppedFile | None:
    return (
        await session.execute(
            select(DroppedFile).where(
                DroppedFile.app_id == app_id,
                DroppedFile.customer_id == customer_id,
                DroppedFile.name == name,
            )
        )
    ).scalar_one_or_none()


async def files_kept(session: AsyncSession, app_id: int) -> int:
    found = await session.execute(
        select(func.count(DroppedFile.id)).where(DroppedFile.app_id == app_id)
    )
    return int(found.scalar_one())


async def remove(session: AsyncSession, app_id: int, customer_id: str, name: str) -> int | None:
    """Remove one of the customer's files; the row it was, None when there was none."""
    gone = await session.execute(
        delete(DroppedFile)
        .where(
            DroppedFile.app_id == app_id,
            DroppedFile.customer_id == customer_id,
            DroppedFile.name == name,
        )
        .returning(DroppedFile.id)
    )
    return gone.scalar_one_or_none()


async def rename(session: AsyncSession, app_id: int, customer_id: str, old: str, new: str) -> bool:
    """Rename one of the customer's files; False when there is no such file. The caller has
    checked that ``new`` is free."""
    row = await file_named(session, app_id, customer_id, old)
    if row is None:
        return False
    row.name = new
    return True


@dataclass(frozen=True, slots=True)
class Dropped:
    """One closed upload: who dropped it, for whom, and its bytes."""

    app_id: int
    client_id: str
    customer_id: str
    name: str
    data: bytes
    #: the signature key the app logged in with (``sk_…``) and the client's address
    key_id: str
    address: str


def error_body(error: DomainError) -> dict[str, object]:
    """The API's error envelope for a refused file."""
    return {"error": error.code.value, "message": error.message, "extra": error.extra}


def _detail(dropped: Dropped) -> dict[str, object]:
    return {
        "customer_id": dropped.customer_id,
        "file_name": dropped.name,
        "sha256": hashlib.sha256(dropped.data).hexdigest(),
        "size": len(dropped.data),
        "key": dropped.key_id,
        "address": dropped.address,
    }


async def _keep(
    session: AsyncSession,
    dropped: Dropped,
    detail: dict[str, object],
    result: bytes,
    now: datetime,
) -> DroppedFile:
    """Keep the file's outcome (a second file of the same name replaces the first's) and
    audit it."""
    row = await file_named(session, dropped.app_id, dropped.customer_id, dropped.name)
    if row is None:
        row = DroppedFile(app_id=dropped.app_id, customer_id=dropped.customer_id, name=dropped.name)
        # a customer erased while their file was written keeps nothing (only the audit entry)
        if await session.get(Customer, dropped.customer_id) is not None:
            session.add(row)
    row.size = len(dropped.data)
    row.sha256 = str(detail["sha256"])
    row.imported = bool(detail["imported"])
    row.result = result.decode()
    row.created_at = now
    audit.record(
        session,
        now=now,
        actor=f"app:{dropped.client_id}",
        action=DROPPED,
        target_type="customer",
        target_id=dropped.customer_id,
        app_id=dropped.app_id,
        detail=detail,
    )
    return row


@dataclass(frozen=True, slots=True)
class Kept:
    """An imported file's result as stored, its row, and the login-secret of a login the import
    created: never stored (S1), held by the drop until the client reads the result."""

    result: bytes
    row: DroppedFile
    secret: str | None


async def import_dropped(
    session: AsyncSession,
    engine: SyncEngine,
    dropped: Dropped,
    parsed: ParsedStatement,
    now: datetime,
    answer: Callable[[ImportOutcome], bytes],
) -> Kept:
    """Import a parsed file for the customer with the calls ``POST /v2/statement`` makes,
    announce it, keep its outcome and audit it, in the caller's unit of work. A refusal is
    raised (a DomainError) and nothing is written: the caller keeps it with
    :func:`keep_refused` in a unit of work of its own.

    ``answer`` renders the outcome as the API answers it (its wire shape lives with the API),
    without the login-secret of a login the import created: S1 keeps a secret only as a keyed
    hash, so the secret is returned to the caller and never written (:func:`result_of` puts it
    into the result file the one time it is shown).
    """
    app = await session.get(App, dropped.app_id)
    if app is None:  # the app was deleted while its client was connected
        raise DomainError(ErrorCode.CLIENT_NOT_FOUND)
    outcome = await import_statement(
        session, engine, app, dropped.customer_id, parsed, source=SOURCE, file_name=dropped.name
    )
    await announce_import(
        session,
        dropped.app_id,
        dropped.customer_id,
        outcome,
        file_name=dropped.name,
        source=SOURCE,
        now=now,
    )
    result = answer(outcome)
    detail = _detail(dropped)
    detail.update(
        imported=True,
        login_id=outcome.login_id,
        login_created=outcome.login_created,
        format=outcome.format,
        accounts=[{"id": a.id, "imported": a.imported} for a in outcome.accounts],
        rows=sum(a.imported for a in outcome.accounts),
    )
    row = await _keep(session, dropped, detail, result, now)
    await session.flush()
    return Kept(result, row, outcome.secret)


def result_of(row: DroppedFile, secret: str | None) -> bytes:
    """The result file as the client reads it: the stored answer, with the login-secret of a
    login its import created put in the one time it is shown."""
    if secret is None:
        return row.result.encode()
    body = msgspec.json.decode(row.result)
    body["data"]["secret"] = secret
    return msgspec.json.encode(body)


async def keep_refused(
    session: AsyncSession, dropped: Dropped, refused: DomainError, now: datetime
) -> bytes:
    """Keep and audit a file the import refused; the result file's body (the API's error
    envelope)."""
    result = msgspec.json.encode(error_body(refused))
    detail = _detail(dropped)
    detail.update(imported=False, error=refused.code.value, message=refused.message)
    await _keep(session, dropped, detail, result, now)
    await feed.record_refused_file(
        session,
        app_id=dropped.app_id,
        kind=SOURCE,
        customer_id=dropped.customer_id,
        at=now,
        outcome=refused.code.value,
        error=refused.message,
        file_name=dropped.name,
    )
    return result


def key_matching(stored: Sequence[SignatureKey], offered_der: bytes) -> SignatureKey | None:
    """The stored key whose public key is the offered one (``SubjectPublicKeyInfo`` DER, the
    whole key compared, never its fingerprint alone)."""
    for key in stored:
        if signature_key_der(key) == offered_der:
            return key
    return None


def signature_key_der(key: SignatureKey) -> bytes:
    return keys.load_pem(key.public_key_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
