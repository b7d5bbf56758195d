"""Counting on the request path: in memory only, a few dictionary operations per request.

Each API call adds one to a counter keyed by (UTC hour, app, ``api``, outcome class, route
group); the connect page adds one per finished connect session to (hour, app, ``connect``,
outcome, ``new``/``reconnect``). Nothing here touches the database: ``bankhub.usage.store``
takes the counts every few seconds and adds them to the ``usage_counts`` table. Counting never
fails or delays a request: an error while counting is swallowed (and logged once).

A call is counted by a ``before_send`` hook of the app when its response starts: that is the
outermost layer, so it sees every response, including the ones an edge protection or an
exception handler produced, for one function call per message (an ASGI middleware wrapping
``send`` cost about three times as much). The app a call belongs to becomes known only once it
is authenticated, deep inside the route handler: ``attribute(app_id)``, called where a caller is
authenticated (``Hub.principal``, the OAuth client check, the connect page's session), puts the
app id in a context variable of the request's task, and the hook takes it from there (and clears
it). Calls no app was authenticated for (refused credentials, bodies refused before the handler
ran, public routes) are counted without an app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from typing import Final

from litestar.types import Message, Scope

from bankhub.observability import logs

log = logging.getLogger("bankhub.usage")

API: Final = "api"
CONNECT: Final = "connect"

#: connect outcomes (``detail`` is ``new`` or ``reconnect``)
CONNECT_SUCCESS: Final = "success"
CONNECT_FAILED: Final = "failed"
CONNECT_CANCELLED: Final = "cancelled"
CONNECT_ABANDONED: Final = "abandoned"
CONNECT_OUTCOMES: Final = (CONNECT_SUCCESS, CONNECT_FAILED, CONNECT_CANCELLED, CONNECT_ABANDONED)

OUTCOME_CLASSES: Final = ("2xx", "3xx", "4xx", "5xx")

#: the first path segment after ``/v2/`` → the route group it is counted under
_V2_GROUPS: Final = {
    "transaction": "transactions",
    "account": "accounts",
    "login": "logins",
    "customer": "customers",
    "token": "connect",  # a route group, not a secret  # nosec B105
    "connect": "connect",
    "keys": "keys",
    "event": "events",
    "statement": "statements",
    "app": "app",
    "service": "services",
}
#: every route group, in the order charts list them
ROUTE_GROUPS: Final = (
    "transactions",
    "accounts",
    "logins",
    "customers",
    "connect",
    "oauth",
    "keys",
    "events",
    "statements",
    "app",
    "services",
    "other",
)

#: (hour since the epoch, app id or None, metric, outcome, detail)
Key = tuple[int, int | None, str, str, str]

#: the app the request being served belongs to, once it is known
_current: ContextVar[int | None] = ContextVar("bankhub_usage_app", default=None)


def attribute(app_id: int) -> None:
    """Count the current request as a call of ``app_id``; its log lines name the app too."""
    _current.set(app_id)
    logs.bind_app(app_id)


def route_group(path: str) -> str | None:
    """The group a path is counted under, or None for what is not an API call (pages' static
    files, health checks, docs, media, the sandbox bank)."""
    if path.startswith("/v2/"):
        if path.startswith("/v2/connect/static/"):
            return None
        segment = path[4:].split("/", 1)[0]
        return _V2_GROUPS.get(segment, "other")
    if path.startswith("/oauth/"):
        return "oauth"
    return None


def outcome_class(status: int) -> str | None:
    if 200 <= status < 600:
        return OUTCOME_CLASSES[status // 100 - 2]
    return None


def hour_of(now: datetime) -> int:
    """Hours since the epoch (UTC) of an aware datetime."""
    return int(now.timestamp()) // 3600


class Counters:
    """Counts not yet written to the database, for one process.

    Only the event loop thread touches it, so no lock: ``take`` swaps the dictionary out in
    one step between two awaits, and later counts go to a fresh one.
    """

    def __init__(self) -> None:
        self._counts: dict[Key, int] = {}
        self._failed = False

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, key: Key, n: int = 1) -> None:
        counts = self._counts
        counts[key] = counts.get(key, 0) + n

    def api(self, now: datetime, app_id: int | None, status: int, group: str) -> None:
        outcome = outcome_class(status)
        if outcome is not None:
            self.add((hour_of(now), app_id, API, outcome, group))

    def connect(self, now: datetime, app_id: int, outcome: str, *, reconnect: bool) -> None:
        """One connect session ended with ``outcome`` (one of ``CONNECT_OUTCOMES``)."""
        try:
            self.add((hour_of(now), app_id, CONNECT, outcome, "reconnect" if reconnect else "new"))
        except Exception:  # noqa: BLE001 - counting must never break the connect flow
            self._note_failure()

    def take(self) -> dict[Key, int]:
        """Everything counted so far; the counters start again from nothing."""
        counts, self._counts = self._counts, {}
        return counts

    def give_back(self, counts: dict[Key, int]) -> None:
        """Counts a flush could not write: kept for the next one."""
        for key, n in counts.items():
            self.add(key, n)

    def _note_failure(self) -> None:
        if not self._failed:
            self._failed = True
            log.exception("counting usage failed; the request was served regardless")


#: the request's ``scope["state"]`` key set when another process answered it (a connect page
#: step passed to the process holding the session): that process counts it
FORWARDED = "bankhub.forwarded"


class UsageHook:
    """A Litestar ``before_send`` hook: counts each API call when its response starts."""

    def __init__(self, counters: Counters, clock: Callable[[], datetime]) -> None:
        self.counters = counters
        self.clock = clock

    async def __call__(self, message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("state", {}).get(FORWARDED):
            return
        try:
            app_id = _current.get()
            if app_id is not None:
                _current.set(None)  # the task may serve another request next (keep-alive)
            group = route_group(scope["path"])
            status = message["status"]
            if group is not None and 200 <= status < 600:
                # Counters.api, inlined: this runs on every response
                key = (
                    hour_of(self.clock()),
                    app_id,
                    API,
                    OUTCOME_CLASSES[status // 100 - 2],
                    group,
                )
                counts = self.counters._counts
                counts[key] = counts.get(key, 0) + 1
        except Exception:  # noqa: BLE001 - counting must never fail a request
            self.counters._note_failure()


def hook(counters: Counters, clock: Callable[[], datetime]) -> UsageHook:
    """The hook to list in ``Litestar(before_send=[...])``."""
    return UsageHook(counters, clock)
