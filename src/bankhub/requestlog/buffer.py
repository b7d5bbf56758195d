"""Recording a call on the request path: one tuple appended to a list in memory.

The read path is measured in single milliseconds, so recording must cost a bounded few
microseconds and never a write: the answer hook below builds one tuple of plain values when
an answer starts and appends it; ``bankhub.requestlog.store`` takes the list every few seconds
and writes it in one batch. A hook of the edge (``api.edge.AnswerHook``), like the usage
counters, rather than a middleware of its own: the edge already has the request's context
(its id, its caller) and the answer's status in hand.

Only calls an app was authenticated for are recorded (the request's ``caller``, set by
``api.auth``): a call refused before that belongs to nobody, since anyone can send any
``client-id``. The route is the matched template, never the raw path, so that nothing a path
might carry is kept and the log is searchable by endpoint. The buffer is bounded: past
``MAX_PENDING`` rows (a database that has been refusing writes for a while) new calls are
counted as dropped, not kept, so memory stays bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final, cast

from litestar.types import HTTPScope, Message, Scope

from bankhub.context import RequestContext

log = logging.getLogger("bankhub.requestlog")

#: the request context's key in ``scope["state"]`` (``api.request_context.STATE_KEY``)
STATE_KEY: Final = "bankhub.request"
#: rows held in memory at most (a flush that keeps failing gives them back up to this)
MAX_PENDING: Final = 100_000
ROUTE_LENGTH: Final = 200

#: (app id, time, method, route, status, latency µs, request id, error code, key id, via)
Row = tuple[int, datetime, str, str, int, int, str, str | None, str | None, str]


class RequestLog:
    """Calls not yet written, for one process. Only the event loop touches it, so no lock:
    ``take`` swaps the list out between two awaits."""

    def __init__(self, limit: int = MAX_PENDING) -> None:
        self.rows: list[Row] = []
        self.limit = limit
        self.dropped = 0
        self._failed = False

    def __len__(self) -> int:
        return len(self.rows)

    def take(self) -> list[Row]:
        rows, self.rows = self.rows, []
        return rows

    def give_back(self, rows: list[Row]) -> None:
        """Rows a flush could not write, kept (the oldest first) up to the limit."""
        room = self.limit - len(self.rows)
        kept = rows[:room] if room > 0 else []
        self.dropped += len(rows) - len(kept)
        self.rows[:0] = kept

    def note_failure(self) -> None:
        if not self._failed:
            self._failed = True
            log.exception("recording an API call failed; the request was served regardless")


def via_of(path: str, token_id: str | None) -> str:
    if path.startswith("/oauth/"):
        return "oauth-client"
    return "bearer" if token_id is not None else "key"


class RequestLogHook:
    """An answer hook of the edge: records the call when its answer starts."""

    def __init__(self, buffer: RequestLog, clock: Callable[[], datetime]) -> None:
        self.buffer = buffer
        self.clock = clock

    async def __call__(self, message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        try:
            context = scope["state"].get(STATE_KEY)
            if not isinstance(context, RequestContext) or context.caller is None:
                return
            buffer = self.buffer
            if len(buffer.rows) >= buffer.limit:
                buffer.dropped += 1
                return
            caller = context.caller
            http = cast(HTTPScope, scope)  # the edge calls its hooks for HTTP only
            buffer.rows.append(
                (
                    caller.app_id,
                    self.clock(),
                    http["method"],
                    (http.get("path_template") or "")[:ROUTE_LENGTH],
                    message["status"],
                    int((time.perf_counter() - context.started) * 1_000_000),
                    context.request_id,
                    context.error_code,
                    caller.key_id,
                    via_of(http["path"], caller.token_id),
                )
            )
        except Exception:  # noqa: BLE001 - recording must never fail a request
            self.buffer.note_failure()
