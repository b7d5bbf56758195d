"""Read-only pages: the audit log (filterable) and the API reference (the OpenAPI description
rendered on the server, no script: each operation's parameters, its body's fields, an example
curl call and answer, and the OAuth endpoints described beside it)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import ImproperlyConfiguredException
from litestar.handlers import HTTPRouteHandler
from markupsafe import Markup, escape
from sqlalchemy import select

from bankhub.api.openapi import finish
from bankhub.api.principal import HubDep, hub_of, public_url
from bankhub.audit.models import AuditEntry
from bankhub.dashboard import paging, roles
from bankhub.dashboard.pages import PREFIX, page
from bankhub.dashboard.roles import Action
from bankhub.oauth import reference as oauth_reference
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


#: a span of code in the description's prose (CommonMark's backticks, the only markup it uses)
_CODE_SPAN = re.compile(r"`([^`]+)`")


def prose(text: str) -> Markup:
    """The description's text for the page: escaped, its `code` spans set as code (shown as
    backticks otherwise)."""
    parts = _CODE_SPAN.split(text)  # prose, code, prose, code, ..., prose
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if n % 2 else escape(part)
        for n, part in enumerate(parts)
    )


#: how deep an example follows nested models (the descriptions have no cycles today; a bound
#: keeps a future one from hanging the page)
_DEPTH = 6
#: placeholders for strings of a known format, so that an example reads like a real call
_FORMATS = {
    "date": "2025-01-31",
    "date-time": "2025-01-31T12:00:00Z",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/callback",
    "url": "https://example.com/callback",
    "email": "user@example.com",
    "binary": "<file>",
}


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The schema a ``$ref`` names (one step), or the schema itself."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        found = schemas.get(ref.rsplit("/", 1)[-1])
        return found if isinstance(found, dict) else {}
    return schema


def type_of(schema: dict[str, Any]) -> str:
    """A field's type in a reader's words: ``string (date)``, ``array of Customer``,
    ``integer or null``, a model's name."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    for union in ("oneOf", "anyOf"):
        options = schema.get(union)
        if isinstance(options, list) and options:
            return " or ".join(dict.fromkeys(type_of(o) for o in options if isinstance(o, dict)))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array":
        items = schema.get("items")
        return f"array of {type_of(items)}" if isinstance(items, dict) else "array"
    if kind is None:
        return "object" if "properties" in schema else "any"
    shape = schema.get("format") or schema.get("contentMediaType")
    return f"{kind} ({shape})" if shape else str(kind)


def _enum(schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """A field's allowed values, looking through a ``$ref`` and a ``oneOf`` with ``null``."""
    schema = _resolve(schema, schemas)
    values = schema.get("enum")
    if isinstance(values, list):
        return [json.dumps(v) if not isinstance(v, str) else v for v in values]
    if "const" in schema:
        return [str(schema["const"])]
    for union in ("oneOf", "anyOf"):
        for option in schema.get(union) or []:
            if isinstance(option, dict) and (found := _enum(option, schemas)):
                return found
    return []


def limits_of(schema: dict[str, Any]) -> str:
    """A field's bounds and default in words (``1 to 255 characters``, ``default: ""``),
    looking into a ``oneOf`` with ``null`` for the bounds the value itself has."""
    parts = []
    for union in ("oneOf", "anyOf"):
        for option in schema.get(union) or []:
            if isinstance(option, dict) and option.get("type") != "null":
                inner = limits_of(option)
                if inner:
                    parts.append(inner)
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(high, int):
        parts.append(f"{low or 0} to {high} characters")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        parts.append(
            f"{low} to {high}"
            if low is not None and high is not None
            else f"at least {low}"
            if low is not None
            else f"at most {high}"
        )
    if isinstance(schema.get("maxItems"), int):
        parts.append(f"at most {schema['maxItems']} items")
    if "default" in schema:
        parts.append(f"default: {json.dumps(schema['default'])}")
    return "; ".join(parts)


def fields_of(schema: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """The body model's fields: name, type, required, description, allowed values."""
    model = _resolve(schema, schemas)
    required = set(model.get("required") or [])
    found = []
    for name, field in (model.get("properties") or {}).items():
        if not isinstance(field, dict):
            continue
        described = field.get("description") or _resolve(field, schemas).get("description", "")
        found.append(
            {
                "name": name,
                "type": type_of(field),
                "required": name in required,
                "description": prose(described),
                "limits": limits_of(field),
                "enum": _enum(field, schemas),
            }
        )
    return found


def example_of(
    schema: dict[str, Any], schemas: dict[str, Any], name: str = "value", depth: int = 0
) -> Any:
    """An example value: the description's own where it gives one, else made from the schema,
    the same every time (strings are ``<name>`` placeholders, never a real value)."""
    if depth > _DEPTH:
        return None
    for given in ("example", "examples"):
        value = schema.get(given)
        if given == "examples" and isinstance(value, list) and value:
            return value[0]
        if given == "example" and value is not None:
            return value
    if "$ref" in schema:
        return example_of(_resolve(schema, schemas), schemas, name, depth + 1)
    if schema.get("default") is not None:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    values = schema.get("enum")
    if isinstance(values, list) and values:
        return values[0]
    for union in ("oneOf", "anyOf"):
        options = [o for o in schema.get(union) or [] if isinstance(o, dict)]
        chosen = [o for o in options if o.get("type") != "null"] or options
        if chosen:
            return example_of(chosen[0], schemas, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or (kind is None and "properties" in schema):
        return {
            key: example_of(value, schemas, key, depth + 1)
            for key, value in (schema.get("properties") or {}).items()
            if isinstance(value, dict)
        }
    if kind == "array":
        items = schema.get("items")
        return [example_of(items, schemas, name, depth + 1)] if isinstance(items, dict) else []
    if kind == "integer":
        low = schema.get("minimum")
        return low if isinstance(low, int) and low > 0 else 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "string":
        return _FORMATS.get(str(schema.get("format", "")), f"<{name}>")
    return None


def _query_value(parameter: dict[str, Any], schemas: dict[str, Any]) -> str:
    """A parameter's example as it goes into a URL: a placeholder or a plain value."""
    name = str(parameter.get("name", "value"))
    value = example_of(parameter.get("schema") or {"type": "string"}, schemas, name)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (dict, list)):
        return f"<{name}>"
    return str(value)


def _media(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The first media type of a request or response body, and its entry."""
    content = body.get("content") or {}
    for media, entry in content.items():
        if isinstance(entry, dict):
            return str(media), entry
    return "", {}


def _shell(text: str) -> str:
    """``text`` in single quotes for a POSIX shell."""
    return "'" + text.replace("'", "'\\''") + "'"


def _requirement(security: list[dict[str, Any]]) -> dict[str, Any]:
    """The credentials an example sends: the seed's own pair (``service-secret``) where the
    operation takes it, else its first requirement."""
    for requirement in security:
        if "service-secret" in requirement:
            return requirement
    return security[0] if security else {}


def curl_of(
    base: str,
    method: str,
    path: str,
    parameters: list[dict[str, Any]],
    security: list[dict[str, Any]],
    schemes: dict[str, Any],
    media: str,
    body: Any,
) -> str:
    """A curl line for the operation, with ``<placeholders>`` for every credential and value."""
    url = base + path.replace("{", "<").replace("}", ">")
    query = [(p["name"], p["example"]) for p in parameters if p["in"] == "query"]
    if query:
        url += "?" + "&".join(f"{name}={value}" for name, value in query)
    lines = [f"curl -X {method} {_shell(url)}"]
    for scheme_name in _requirement(security):
        scheme = schemes.get(scheme_name, {})
        if scheme.get("type") == "apiKey" and scheme.get("in") == "header":
            header = scheme.get("name", scheme_name)
            lines.append(f"-H {_shell(f'{header}: <{header}>')}")
        elif scheme.get("type") == "http" and scheme.get("scheme") == "bearer":
            lines.append(f"-H {_shell('Authorization: Bearer <access-token>')}")
    for p in parameters:
        if p["in"] == "header" and p["required"]:
            lines.append("-H " + _shell(p["name"] + ": <value>"))
    if media == "application/json" and body is not None:
        lines.append(f"-H {_shell('content-type: application/json')}")
        lines.append(f"-d {_shell(json.dumps(body, separators=(',', ':')))}")
    elif media == "multipart/form-data" and isinstance(body, dict):
        for key, value in body.items():
            shown = "@statement.ofx" if value == "<file>" else str(value)
            lines.append(f"-F {_shell(f'{key}={shown}')}")
    elif media == "application/x-www-form-urlencoded" and isinstance(body, dict):
        for key, value in body.items():
            lines.append(f"--data-urlencode {_shell(f'{key}={value}')}")
    return " \\\n  ".join(lines)


def _operations(spec: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """Each operation with what a reader needs: method, path, summary, parameters, the body's
    fields, answers, and an example request (curl) and answer."""
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    schemes: dict[str, Any] = spec.get("components", {}).get("securitySchemes", {})
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
                    "description": prose(p.get("description", "")),
                    "example": _query_value(p, schemas),
                }
                for p in operation.get("parameters", [])
                if isinstance(p, dict)
            ]
            media, entry = _media(operation.get("requestBody") or {})
            schema: dict[str, Any] = entry.get("schema") or {}
            body = None
            if media:
                body = entry.get("example")
                if body is None:
                    body = example_of(schema, schemas, "body")
            answered = sorted(
                (code, answer)
                for code, answer in operation.get("responses", {}).items()
                if isinstance(answer, dict)
            )
            success = next((a for code, a in answered if code.startswith("2")), {})
            _, answer_entry = _media(success)
            answer = answer_entry.get("example")
            if answer is None and answer_entry.get("schema"):
                answer = example_of(answer_entry["schema"], schemas, "data")
            security = operation.get("security", spec.get("security", []))
            found.append(
                {
                    "anchor": f"{method}-{path}".replace("/", "-")
                    .replace("{", "")
                    .replace("}", "")
                    .replace(".", ""),
                    "method": method.upper(),
                    "path": path,
                    "tag": (operation.get("tags") or ["other"])[0],
                    "summary": operation.get("summary", ""),
                    "description": prose(operation.get("description", "")),
                    "parameters": parameters,
                    "body": schema.get("$ref", "").rsplit("/", 1)[-1],
                    "media": media,
                    "fields": fields_of(schema, schemas) if media else [],
                    "curl": curl_of(
                        base,
                        method.upper(),
                        path,
                        parameters,
                        security,
                        schemes,
                        media,
                        body,
                    ),
                    "answer": json.dumps(answer, indent=2) if answer is not None else "",
                    "responses": [(code, prose(a.get("description", ""))) for code, a in answered],
                }
            )
    return found


def with_oauth(spec: dict[str, Any], app: Any) -> dict[str, Any]:
    """The description with the OAuth endpoints added from their routes (method, path,
    summary) and ``bankhub.oauth.reference`` (the rest); see that module for why they are not
    in ``/openapi.json``."""
    paths: dict[str, Any] = dict(spec.get("paths", {}))
    for method, path, summary in oauth_routes(app):
        described = oauth_reference.OPERATIONS.get((method, path))
        if described is None:
            continue
        item = dict(paths.get(path, {}))
        item[method] = {"tags": ["oauth"], "summary": summary, **described}
        paths[path] = item
    return {**spec, "paths": paths}


def oauth_routes(app: Any) -> list[tuple[str, str, str]]:
    """(method, path, summary) of every route tagged ``oauth`` the application serves."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler) or "oauth" not in (handler.tags or []):
                continue
            for verb in sorted(set(handler.http_methods) - {"HEAD", "OPTIONS"}):
                found.append((verb.lower(), route.path, handler.summary or ""))
    return sorted(found)


@get(f"{PREFIX}/api", opt=roles.route(Action.VIEW), include_in_schema=False)
async def api_reference(request: AnyRequest) -> Response[Any]:
    """The partner API as ``/openapi.json`` describes it (and the OAuth endpoints beside it),
    readable without the public docs: each operation's body fields and an example call."""
    try:
        spec: dict[str, Any] = finish(request.app.openapi_schema).to_schema()
    except ImproperlyConfiguredException:
        spec = {}
    operations = _operations(with_oauth(spec, request.app) if spec else {}, _base(request))
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


def _base(request: AnyRequest) -> str:
    return public_url(hub_of(request), request)


READ_ROUTES = [audit_log, api_reference]
