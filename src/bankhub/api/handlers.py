"""The error envelope at the edge: every exception becomes an answer in the seed's shape.

A domain error (``bankhub.errors``) answers with its code's status and envelope
(``bankhub.api.errors``); Litestar's own refusals (a body that does not fit its model, no such
route, a method not allowed) get the seed's codes too; anything else is a generic
``InternalError``, its details only in the operator's log (S32). On the dashboard's paths and
the connect pages the same error is a page instead of JSON.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap

from bankhub.api import audit as edge_audit
from bankhub.api import errors, request_context
from bankhub.connect.pages import error_page, is_page_path
from bankhub.dashboard.pages import PREFIX as DASHBOARD_PREFIX
from bankhub.dashboard.pages import dashboard_error_page
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.security import network, ratelimit

log = logging.getLogger("bankhub")

AnyRequest = Request[Any, Any, Any]


def _error_response(request: AnyRequest, error: DomainError) -> Response[Any]:
    # S33: a request whose app credential was not verified is its address's anonymous traffic,
    # refused whatever its own error once the address is over its limit
    refused = ratelimit.refusal(request.scope)
    if refused is not None and errors.status(error) != 429:
        error = refused
    request_context.of(request).error_code = str(error.code)  # for the request log
    headers = {"Cache-Control": "no-store", **errors.headers(error)}
    if request.url.path == DASHBOARD_PREFIX or request.url.path.startswith(f"{DASHBOARD_PREFIX}/"):
        return dashboard_error_page(request, error)
    if is_page_path(request.url.path):
        return error_page(request, error, headers)
    return Response(
        content=errors.body(error),
        status_code=errors.status(error),
        headers=headers,
        media_type=MediaType.JSON,
    )


def handle_api_error(request: AnyRequest, exc: DomainError) -> Response[Any]:
    if network.is_auth_failure(exc, request.headers):
        # S18: noted here, by error code, wherever the credential was refused; counted for the
        # address once the answer is sent (network.Settlement, settled by the edge)
        network.note_failure(request.scope)
    edge_audit.api_auth_failure(request, exc)  # S42: failed authentications, coalesced
    return _error_response(request, exc)


def _problem(item: dict[str, Any]) -> str:
    """Litestar's message plus the field it is about, as msgspec writes it (``at `$.name```)."""
    message, key = str(item.get("message", "")), str(item.get("key", ""))
    if not message or not key or key == "data":
        return message
    where = f"$.{key}" if item.get("source") == "body" else key
    return f"{message} - at `{where[:100]}`"


def handle_validation(request: AnyRequest, exc: ValidationException) -> Response[Any]:
    # Litestar raises this for bodies that are JSON but do not fit the request model.
    detail = exc.extra if isinstance(exc.extra, list) else []
    problems = [_problem(item) for item in detail if isinstance(item, dict)]
    message = "; ".join(p for p in problems if p) or "Data is invalid"
    return _error_response(
        request, DomainError(ErrorCode.DATA_INVALID, message, {"problems": problems})
    )


def handle_not_found(request: AnyRequest, exc: NotFoundException) -> Response[Any]:
    return _error_response(
        request, NotFound(ErrorCode.NOT_FOUND, f"No resource at {request.url.path[:200]}")
    )


def handle_method(request: AnyRequest, exc: MethodNotAllowedException) -> Response[Any]:
    allowed = exc.headers if exc.headers and "allow" in {k.lower() for k in exc.headers} else None
    error = errors.Refusal(
        ErrorCode.METHOD_NOT_ALLOWED,
        f"{request.method} is not allowed on {request.url.path[:200]}",
        headers=allowed,
    )
    return _error_response(request, error)


def handle_http(request: AnyRequest, exc: HTTPException) -> Response[Any]:
    code = ErrorCode.BAD_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL_ERROR
    error = DomainError(code, exc.detail if exc.status_code < 500 else None)
    response = _error_response(request, error)
    response.status_code = exc.status_code
    return response


def handle_internal(request: AnyRequest, exc: Exception) -> Response[Any]:
    # Generic body, never a traceback (S32); the details go to the operator's log only.
    log.error(
        "unhandled error on %s %s (request %s): %s",
        request.method,
        request.url.path,
        request_context.of(request).request_id,
        type(exc).__name__,
        exc_info=exc,
    )
    return _error_response(request, DomainError(ErrorCode.INTERNAL_ERROR))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: handle_api_error,
    ValidationException: handle_validation,
    NotFoundException: handle_not_found,
    MethodNotAllowedException: handle_method,
    HTTPException: handle_http,
    Exception: handle_internal,
}
