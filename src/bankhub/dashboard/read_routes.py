"""Read-only pages: the audit log (filterable) and the API reference (the OpenAPI description
rendered on the server, no script)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import ImproperlyConfiguredException
from sqlalchemy import select

from bankhub.api.openapi import finish
from bankhub.api.principal import HubDep
from bankhub.audit.models import AuditEntry
from bankhub.dashboard import paging, roles
from bankhub.dashboard.pages import PREFIX, page
from bankhub.dashboard.roles import Action
from bankhub.partners.models import App

AnyRequest = Request[Any, Any, Any]
PAGE_SIZE = 100
#: newest first (ids grow with time)
AUDIT_ORDER = paging.Keyset((paging.Key(AuditEntry.id, "int"),))
#: a detail longer than this is shown cut, with the whole of it one click away
DETAIL_SHOWN = 90
METHODS = ("get", "post", "put", "patch", "delete")


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text[:10]), time(), UTC)
    except ValueError:
        return None


#: how the audit log names who acted, by the stored actor's kind (``kind:who``)
_ACTOR_KINDS = {
    "member": "{}",
    "app": "app {} (API)",
    "customer": "end user (customer {})",
    "operator": "operator ({})",
    "system": "bankhub ({})",
}
_OPERATOR_WAYS = {"cli": "command line", "bootstrap": "first owner's link"}


def actor_label(actor: str) -> str:
    """The stored actor (``member:alice@example.com``, ``operator:cli``) in a team's words."""
    kind, _, who = actor.partition(":")
    shape = _ACTOR_KINDS.get(kind)
    if shape is None or not who:
        return actor
    if kind == "operator":
        who = _OPERATOR_WAYS.get(who, who)
    return shape.format(who.replace("-", " ") if kind == "system" else who)


@get(f"{PREFIX}/audit", opt=roles.route(Action.AUDIT_VIEW), include_in_schema=False)
async def audit_log(hub: HubDep, request: AnyRequest) -> Response[Any]:
    """Newest first, paged; filters: actor (contains), action, app, from/to dates."""
    params = request.query_params
    actor = (params.get("actor") or "")[:200].strip()
    action = (params.get("action") or "")[:60].strip()
    client_id = (params.get("app") or "")[:64].strip()
    since, until = _date(params.get("from")), _date(params.get("to"))
    window = paging.window_of(params, default=PAGE_SIZE)
    query = select(AuditEntry)
    async with hub.db.transaction() as db:
        apps = {a.id: a for a in (await db.execute(select(App).order_by(App.id))).scalars()}
        if actor:
            query = query.where(AuditEntry.actor.contains(actor, autoescape=True))
        if action:
            query = query.where(AuditEntry.action == action)
        if client_id:
            wanted = [a.id for a in apps.values() if a.client_id == client_id]
            query = query.where(AuditEntry.app_id == (wanted[0] if wanted else -1))
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        if until is not None:
            query = query.where(AuditEntry.at < until + timedelta(days=1))
        found = await paging.fetch(db, query, AUDIT_ORDER, window)
        actions = sorted(set((await db.execute(select(AuditEntry.action).distinct())).scalars()))
    entries = [_entry(e, apps) for e in found.rows]
    filters = {
        "actor": actor,
        "action": action,
        "app": client_id,
        "from": params.get("from", "")[:10],
        "to": params.get("to", "")[:10],
    }
    return page(
        request,
        "audit.html",
        entries=entries,
        actions=actions,
        apps=list(apps.values()),
        filters=filters,
        found=found,
        notice=found.problem,
    )


def _entry(e: AuditEntry, apps: dict[int, App]) -> dict[str, Any]:
    """One row as the page shows it: the detail cut short, its whole text kept beside."""
    detail = json.dumps(e.detail, sort_keys=True, default=str) if e.detail else ""
    full = json.dumps(e.detail, sort_keys=True, default=str, indent=1) if e.detail else ""
    return {
        "id": e.id,
        "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
        "actor": actor_label(e.actor),
        "action": e.action,
        "target": f"{e.target_type} {e.target_id or ''}".strip(),
        "app": apps[e.app_id].name if e.app_id in apps else (e.app_id or ""),
        "detail": detail if len(detail) <= DETAIL_SHOWN else detail[: DETAIL_SHOWN - 1] + "…",
        "detail_full": full[:4000] if len(detail) > DETAIL_SHOWN else "",
    }


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Each operation with what a reader needs: method, path, summary, parameters, answers."""
    found = []
    for path, item in sorted(spec.get("paths", {}).items()):
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            parameters = [
                {
                    "name": p.get("name", ""),
                    "in": p.get("in", ""),
                    "required": bool(p.get("required")),
                    "description": p.get("description", ""),
                }
                for p in operation.get("parameters", [])
                if isinstance(p, dict)
            ]
            content: dict[str, Any] = operation.get("requestBody", {}).get("content", {})
            first: dict[str, Any] = next(iter(content.values()), {})
            schema: dict[str, Any] = first.get("schema", {})
            found.append(
                {
                    "anchor": f"{method}-{path}".replace("/", "-")
                    .replace("{", "")
                    .replace("}", ""),
                    "method": method.upper(),
                    "path": path,
                    "tag": (operation.get("tags") or ["other"])[0],
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": parameters,
                    "body": schema.get("$ref", "").rsplit("/", 1)[-1],
                    "responses": sorted(
                        (code, answer.get("description", ""))
                        for code, answer in operation.get("responses", {}).items()
                    ),
                }
            )
    return found


@get(f"{PREFIX}/api", opt=roles.route(Action.VIEW), include_in_schema=False)
async def api_reference(request: AnyRequest) -> Response[Any]:
    """The partner API as ``/openapi.json`` describes it, readable without the public docs."""
    try:
        spec: dict[str, Any] = finish(request.app.openapi_schema).to_schema()
    except ImproperlyConfiguredException:
        spec = {}
    operations = _operations(spec)
    tags = sorted({op["tag"] for op in operations})
    schemas = spec.get("components", {}).get("schemas", {})
    models = {
        name: json.dumps(schema, indent=2, sort_keys=True)
        for name, schema in sorted(schemas.items())
    }
    return page(
        request,
        "api.html",
        info=spec.get("info", {}),
        operations=operations,
        tags=tags,
        models=models,
    )


READ_ROUTES = [audit_log, api_reference]
