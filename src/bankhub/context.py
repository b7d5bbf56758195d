"""What bankhub knows of the request in hand: its id, who authenticated it, what it read.

The API's edge (``bankhub.api.request_context``) gives every HTTP request its id and context and
sets it here for the task serving it; services below the edge read it (the audit entries a
request causes carry its id) without ever seeing the request itself.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

MAX_LENGTH = 64
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who authenticated the request, as plain values (they outlive its units of work)."""

    app_id: int
    client_id: str
    #: the API key used, directly or through the bearer token granted with it
    key_id: str | None
    #: the access token's id (``jti``) when the caller presented a bearer token
    token_id: str | None


@dataclass(slots=True)
class RequestContext:
    request_id: str
    #: the ASGI scope of the request (its route handler, once routed)
    scope: Mapping[str, Any] | None = None
    #: the caller, once the API's edge has authenticated it (``bankhub.api.auth``)
    caller: Caller | None = None
    #: the audit entry of the account data this request answers with, waiting for the audit
    #: writer (``bankhub.audit``); written before the answer leaves
    pending_read: dict[str, Any] | None = None
    #: the request's account-data read is recorded (pending above, or in its own unit of work)
    read_audited: bool = False
    #: ``time.perf_counter()`` as the edge took the request (its latency in the request log)
    started: float = field(default_factory=time.perf_counter)
    #: the envelope's ``error`` when the answer is a refusal (for the request log)
    error_code: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("bankhub_request", default=None)


def sane(value: str | None) -> str | None:
    """The caller's id when it is one bankhub keeps, else None."""
    if value is None or not _SANE.fullmatch(value):
        return None
    return value


def fresh() -> str:
    return secrets.token_hex(16)


def current() -> RequestContext | None:
    """The context of the request this task is serving, if any."""
    return _current.get()


def current_id() -> str | None:
    context = _current.get()
    return context.request_id if context is not None else None


def enter(context: RequestContext) -> Token[RequestContext | None]:
    """Make ``context`` the current one for this task (the edge, as a request starts)."""
    return _current.set(context)


def leave(token: Token[RequestContext | None]) -> None:
    _current.reset(token)
