"""Audit entries: written in the caller's unit of work, or through the hub's audit writer.

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

from litestar import Request
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api import request_context
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.audit.models import AuditEntry
from bankhub.partners.models import App

if TYPE_CHECKING:
    from bankhub.audit.writer import AuditWriter
    from bankhub.hub import Hub

AnyRequest = Request[Any, Any, Any]

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


def request_id(request: AnyRequest | None = None) -> str | None:
    """The id of the request (the caller's sane ``X-Request-Id``, or the one bankhub made)."""
    if request is not None:
        return request_context.of(request).request_id
    return request_context.current_id()


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
        "request_id": request_id or request_context.current_id(),
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


def credential(caller: request_context.Caller | None) -> dict[str, str]:
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


def account_data_read(
    request: AnyRequest,
    *,
    resource: str,
    login_ids: Sequence[int],
    customer_id: str | None,
    account_ids: Sequence[int] = (),
    rows: int | None = None,
    counts: dict[str, int] | None = None,
    action: str = READ,
    target: tuple[str, str | int] | None = None,
    session: AsyncSession | None = None,
) -> None:
    """Record that this request answers with account data of these logins (one call a request).

    ``resource`` names what was read; ``rows`` how many rows the answer carries; the entry's
    target is the login when there is one, else the customer, unless ``target`` says. Without
    ``session`` the entry waits in the request's context and the app writes it through the audit
    writer before the answer is sent; with one, it joins that unit of work (for a route that
    writes anyway). The request's caller (set by ``Hub.principal``) names app and credential.
    """
    from bankhub.hub import hub_of  # the hub imports this module

    hub = hub_of(request)
    context = request_context.of(request)
    caller = context.caller
    if caller is None:
        raise RuntimeError("account data is read before the caller was authenticated")
    listed = sorted(set(account_ids))
    detail: dict[str, Any] = {
        "resource": resource,
        "route": f"{request.method} {request.url.path}"[:200],
        "customer_id": customer_id,
        "login_ids": sorted(set(login_ids))[:MAX_LISTED],
        "account_ids": listed[:MAX_LISTED],
        **credential(caller),
    }
    if len(listed) > MAX_LISTED:
        detail["accounts_total"] = len(listed)
    if rows is not None:
        detail["rows"] = rows
    detail.update(counts or {})
    if target is None:
        single = len(set(login_ids)) == 1
        target = ("login", login_ids[0]) if single else ("customer", customer_id or "")
    row = entry_row(
        now=hub.clock(),
        actor=f"app:{caller.client_id}",
        action=action,
        target_type=target[0],
        target_id=target[1],
        app_id=caller.app_id,
        detail=detail,
        request_id=context.request_id,
    )
    if context.read_audited:
        raise RuntimeError("a request records its account-data read once")
    context.read_audited = True
    if session is not None:
        session.add(AuditEntry(**row))
    else:
        context.pending_read = row


def read_unit(session: AsyncSession) -> AsyncSession | None:
    """The unit of work a read's entry should join (``account_data_read(session=...)``).

    On PostgreSQL the read's own transaction: the entry is one INSERT more in it, committed with
    it before the answer leaves, where the writer's own transaction per batch costs four
    statements (BEGIN, the tenant scope, the INSERT, COMMIT); per statement the server's work,
    not the row, is what a read pays for. On SQLite None (the audit writer): an INSERT would make
    every read a writer, and SQLite has one writer at a time.
    """
    return session if session.bind.dialect.name == "postgresql" else None


class AuditMissing(RuntimeError):
    """A route marked as answering account data answered without recording the read."""


async def before_answer(status: int) -> None:
    """Called as the answer is about to be sent: writes the request's pending read (and waits
    for its commit); refuses a successful answer of a marked route that recorded none."""
    context = request_context.current()
    if context is None or context.scope is None:
        return
    row, context.pending_read = context.pending_read, None
    if row is not None:
        hub: Hub = context.scope["litestar_app"].state.hub
        await hub.audit.write(row)
        return
    handler = context.scope.get("route_handler")
    marked = is_account_data(getattr(handler, "opt", None))
    if marked and status < 400 and not context.read_audited:
        raise AuditMissing(f"{getattr(handler, 'paths', '?')} answered without an audit entry")


# --- authentication events -----------------------------------------------------------------------

#: API errors that are a failed authentication (the reason code is the error code)
_FAILURES = frozenset(
    {
        ErrorCode.CLIENT_NOT_FOUND,
        ErrorCode.CREDENTIAL_INVALID,
        ErrorCode.KEY_REVOKED,
        ErrorCode.INVALID_TOKEN,
        ErrorCode.LOGIN_NOT_FOUND,
    }
)
#: reasons where the presented client-id names a real app (checked by the refusal itself)
_KNOWN_APP = frozenset({ErrorCode.CREDENTIAL_INVALID, ErrorCode.KEY_REVOKED})


def failure_reason(error: ApiError, headers: Any) -> str | None:
    """The reason code when ``error`` refuses a credential, else None."""
    if error.code not in _FAILURES:
        challenge = next(
            (v for k, v in error.headers.items() if k.lower() == "www-authenticate"), ""
        )
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


def api_auth_failure(request: AnyRequest, error: ApiError) -> None:
    """Count ``error`` if it refused a credential presented to the API."""
    from bankhub.hub import hub_of
    from bankhub.security import network

    reason = failure_reason(error, request.headers)
    if reason is None:
        return
    hub = hub_of(request)
    caller = request_context.of(request).caller
    address = str(network.client_ip(request.scope, hub.settings.trusted_networks))
    key_id = error.extra.get("key_id") if error.code == ErrorCode.KEY_REVOKED else None
    auth_failure(
        hub.audit,
        address=address,
        reason=reason,
        path=request.url.path,
        client_id=request.headers.get("client-id"),
        known_app=caller is not None or error.code in _KNOWN_APP,
        app_id=caller.app_id if caller is not None else None,
        key_id=key_id if isinstance(key_id, str) else None,
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
