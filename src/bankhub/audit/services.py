"""Audit entries: written in the caller's unit of work, or through the hub's audit writer.

The parts that need the HTTP request (recording a request's read of account data, writing it
before the answer leaves, counting refused credentials) are the API's edge: ``bankhub.api.audit``.

What is audited (S42, docs/security.md): changes of keys, settings and data (in the unit of
work that makes them); every answer carrying account data (one ``account_data.read``,
``customer.exported`` or ``statement.imported`` entry per request, durable before the answer
leaves, through the group-commit writer); authentication events: OAuth grants, refreshes,
revocations (in their unit of work), introspection callers and failed authentications
(coalesced per minute). Entries name ids, never personal data or secrets: an erased customer's
entries stay, with nothing left in them that describes the person.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub import context
from bankhub.audit.models import AuditEntry
from bankhub.context import Caller
from bankhub.errors import DomainError, ErrorCode
from bankhub.partners.models import App

if TYPE_CHECKING:
    from bankhub.audit.writer import AuditWriter

#: the route marker: ``opt={..., "audit": "account-data"}`` on every route whose answer carries
#: account or transaction data; such an answer is refused (500) unless the route recorded it
AUDIT_OPT = "audit"
ACCOUNT_DATA = "account-data"
READ = "account_data.read"
EXPORTED = "customer.exported"
IMPORTED = "statement.imported"
AUTH_FAILED = "auth.failed"
INTROSPECTED = "oauth.introspected"
#: account ids listed in one entry; beyond that only their number
MAX_LISTED = 50


def account_data(opt: dict[str, Any]) -> dict[str, Any]:
    """A route's ``opt`` with the account-data marker added."""
    return {**opt, AUDIT_OPT: ACCOUNT_DATA}


def is_account_data(opt: dict[str, Any] | None) -> bool:
    return bool(opt) and opt is not None and opt.get(AUDIT_OPT) == ACCOUNT_DATA


def app_actor(app: App) -> str:
    return f"app:{app.client_id}"


def request_id() -> str | None:
    """The id of the request being served (the caller's sane ``X-Request-Id``, or the one
    bankhub made), None outside a request."""
    return context.current_id()


def entry_row(
    *,
    now: datetime,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int | None = None,
    app_id: int | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An entry's columns, for the writer or for :func:`record`. The request id defaults to
    that of the request being served, if any."""
    return {
        "app_id": app_id,
        "actor": actor[:200],
        "action": action[:60],
        "target_type": target_type[:40],
        "target_id": None if target_id is None else str(target_id)[:64],
        "detail": detail or {},
        "request_id": request_id or context.current_id(),
        "at": now,
    }


def record(
    session: AsyncSession,
    *,
    now: datetime,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int | None = None,
    app_id: int | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    """Add an entry to the caller's unit of work (it is stored if and when that commits)."""
    entry = AuditEntry(
        **entry_row(
            now=now,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            app_id=app_id,
            detail=detail,
            request_id=request_id,
        )
    )
    session.add(entry)
    return entry


def credential(caller: Caller | None) -> dict[str, str]:
    """Which credential a caller used: its API key id and, for a bearer, the token's id."""
    if caller is None:
        return {}
    used: dict[str, str] = {}
    if caller.key_id is not None:
        used["key_id"] = caller.key_id
    if caller.token_id is not None:
        used["token_id"] = caller.token_id
    return used


# --- reads of account data -----------------------------------------------------------------------


def read_unit(session: AsyncSession) -> AsyncSession | None:
    """The unit of work a read's entry should join (``account_data_read(session=...)``).

    On PostgreSQL the read's own transaction: the entry is one INSERT more in it, committed with
    it before the answer leaves, where the writer's own transaction per batch costs four
    statements (BEGIN, the tenant scope, the INSERT, COMMIT); per statement the server's work,
    not the row, is what a read pays for. On SQLite None (the audit writer): an INSERT would make
    every read a writer, and SQLite has one writer at a time.
    """
    return session if session.bind.dialect.name == "postgresql" else None


# --- authentication events -----------------------------------------------------------------------

#: API errors that are a failed authentication (the reason code is the error code)
_FAILURES = frozenset(
    {
        ErrorCode.CLIENT_NOT_FOUND,
        ErrorCode.CREDENTIAL_INVALID,
        ErrorCode.KEY_REVOKED,
        ErrorCode.APP_ARCHIVED,
        ErrorCode.INVALID_TOKEN,
        ErrorCode.LOGIN_NOT_FOUND,
        # a request signature refused for the app's verified credential (docs/signatures.md)
        ErrorCode.SIGNATURE_INVALID,
        ErrorCode.SIGNATURE_EXPIRED,
        ErrorCode.SIGNATURE_REPLAYED,
        ErrorCode.SIGNATURE_REQUIRED,
    }
)
#: reasons where the presented client-id names a real app (checked by the refusal itself)
KNOWN_APP = frozenset({ErrorCode.CREDENTIAL_INVALID, ErrorCode.KEY_REVOKED, ErrorCode.APP_ARCHIVED})


def failure_reason(error: DomainError, headers: Any) -> str | None:
    """The reason code when ``error`` refuses a credential, else None."""
    if error.code not in _FAILURES:
        challenge = error.challenge or ""
        return str(ErrorCode.INVALID_TOKEN) if "invalid_token" in challenge else None
    if error.code == ErrorCode.LOGIN_NOT_FOUND and "login-secret" not in headers:
        return None  # an unknown login id, not a guessed login-secret
    return str(error.code)


def auth_failure(
    writer: AuditWriter,
    *,
    address: str,
    reason: str,
    path: str,
    client_id: str | None,
    known_app: bool,
    app_id: int | None = None,
    key_id: str | None = None,
) -> None:
    """Count a failed authentication: one ``auth.failed`` entry per address, reason and app a
    minute, with the count, never the secret presented (the address blocker, S18, limits how
    many minutes an abuser gets)."""
    client = (client_id or "")[:64] or None
    detail: dict[str, Any] = {"reason": reason, "path": path[:200]}
    if key_id is not None:
        detail["key_id"] = key_id[:40]
    app_client = client if known_app else None
    row = entry_row(
        now=writer.clock(),
        actor=f"address:{address}",
        action=AUTH_FAILED,
        target_type="address",
        target_id=address,
        app_id=app_id,
        detail=detail,
    )
    samples = {"client_ids": client} if client is not None and not known_app else None
    writer.count(
        (AUTH_FAILED, address, reason, app_id, app_client),
        row,
        samples=samples,
        client_id=app_client,
    )


def introspection(writer: AuditWriter, app: App, key_id: str, active: bool) -> None:
    """Count an introspection call: one entry per calling key a minute, with counts."""
    row = entry_row(
        now=writer.clock(),
        actor=app_actor(app),
        action=INTROSPECTED,
        target_type="api_key",
        target_id=key_id,
        app_id=app.id,
        detail={"key_id": key_id},
    )
    writer.count((INTROSPECTED, app.id, key_id), row, counter="active" if active else "inactive")


# --- reading and purging the log -----------------------------------------------------------------


async def search(
    session: AsyncSession,
    *,
    app_id: int | None = None,
    actions: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    request_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first, filtered; page on with ``before_id`` (the last id of a page)."""
    query = select(AuditEntry)
    if app_id is not None:
        query = query.where(AuditEntry.app_id == app_id)
    if actions:
        query = query.where(AuditEntry.action.in_(list(actions)))
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if request_id is not None:
        query = query.where(AuditEntry.request_id == request_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    query = query.order_by(AuditEntry.id.desc()).limit(max(1, limit))
    return list((await session.execute(query)).scalars())


async def purge_batch(session: AsyncSession, older_than: datetime, batch: int) -> int:
    """Delete up to ``batch`` of the oldest entries from before ``older_than``; how many went."""
    ids = list(
        (
            await session.execute(
                select(AuditEntry.id)
                .where(AuditEntry.at < older_than)
                .order_by(AuditEntry.id)
                .limit(batch)
            )
        ).scalars()
    )
    if not ids:
        return 0
    deleted = await session.execute(
        delete(AuditEntry)
        .where(AuditEntry.id.in_(ids), AuditEntry.at < older_than)
        .returning(AuditEntry.id)
        .execution_options(synchronize_session=False)
    )
    return len(deleted.all())


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat().replace("+00:00", "Z"),
        "app_id": entry.app_id,
        "actor": entry.actor,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "request_id": entry.request_id,
        "detail": entry.detail,
    }
