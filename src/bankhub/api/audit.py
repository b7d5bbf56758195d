"""The audit entries a request causes, recorded at the API's edge (S42).

Every answer carrying account data records one ``account_data.read``, ``customer.exported`` or
``statement.imported`` entry, durable before the answer leaves (:func:`before_answer`, the app's
``after_request``); every refused credential is counted (:func:`api_auth_failure`). The entries
themselves, and everything that needs no request, are ``bankhub.audit.services``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api import request_context
from bankhub.api.principal import hub_of
from bankhub.audit import services as audit
from bankhub.audit.models import AuditEntry
from bankhub.errors import DomainError, ErrorCode
from bankhub.hub import Hub
from bankhub.security import network

AnyRequest = Request[Any, Any, Any]


def account_data_read(
    request: AnyRequest,
    *,
    resource: str,
    login_ids: Sequence[int],
    customer_id: str | None,
    account_ids: Sequence[int] = (),
    rows: int | None = None,
    counts: dict[str, int] | None = None,
    action: str = audit.READ,
    target: tuple[str, str | int] | None = None,
    session: AsyncSession | None = None,
) -> None:
    """Record that this request answers with account data of these logins (one call a request).

    ``resource`` names what was read; ``rows`` how many rows the answer carries; the entry's
    target is the login when there is one, else the customer, unless ``target`` says. Without
    ``session`` the entry waits in the request's context and the app writes it through the audit
    writer before the answer is sent; with one, it joins that unit of work (for a route that
    writes anyway). The request's caller (set by :class:`bankhub.api.auth.Auth`) names app and
    credential.
    """
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
        "login_ids": sorted(set(login_ids))[: audit.MAX_LISTED],
        "account_ids": listed[: audit.MAX_LISTED],
        **audit.credential(caller),
    }
    if len(listed) > audit.MAX_LISTED:
        detail["accounts_total"] = len(listed)
    if rows is not None:
        detail["rows"] = rows
    detail.update(counts or {})
    if target is None:
        single = len(set(login_ids)) == 1
        target = ("login", login_ids[0]) if single else ("customer", customer_id or "")
    row = audit.entry_row(
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
    marked = audit.is_account_data(getattr(handler, "opt", None))
    if marked and status < 400 and not context.read_audited:
        raise AuditMissing(f"{getattr(handler, 'paths', '?')} answered without an audit entry")


def api_auth_failure(request: AnyRequest, error: DomainError) -> None:
    """Count ``error`` if it refused a credential presented to the API."""
    reason = audit.failure_reason(error, request.headers)
    if reason is None:
        return
    hub = hub_of(request)
    caller = request_context.of(request).caller
    address = str(network.client_ip(request.scope, hub.settings.trusted_networks))
    key_id = error.extra.get("key_id") if error.code == ErrorCode.KEY_REVOKED else None
    audit.auth_failure(
        hub.audit,
        address=address,
        reason=reason,
        path=request.url.path,
        client_id=request.headers.get("client-id"),
        known_app=caller is not None or error.code in audit.KNOWN_APP,
        app_id=caller.app_id if caller is not None else None,
        key_id=key_id if isinstance(key_id, str) else None,
    )
