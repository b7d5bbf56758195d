"""The dashboard's one way to page a list that can grow: keyset paging with next and previous
links, a page size the reader picks, and a count where it is cheap (else "more follow").

Keyset ("seek") paging rather than ``OFFSET``: a page is found through the index at any depth,
and a row added while someone pages (a new audit entry, a new customer) does not push rows they
have seen onto the next page. A link carries the key of the row it continues from, encoded
opaquely (``after``: the rows following it, ``before``: the rows preceding it).

Written here rather than taken from sqlakeyset, which pages plain SQL queries well: the payments
list keeps only the rows whose decrypted amount matches a filter, so its page is filled by
scanning in key order up to a bound and must continue where the scan stopped. One function
(``fetch``) serves both kinds of list, so every list has the same links, sizes and cursor.

Usage, in a route::

    window = paging.window_of(request.query_params, default=50)
    found = await paging.fetch(db, query, CUSTOMERS, window, count=True)

and in the template ``{% from "_pager.html" import pager %}{{ pager(found, path, filters) }}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlencode

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bankhub.clock import as_utc

T = TypeVar("T")
Kind = Literal["int", "str", "time"]

#: the page sizes a reader may choose
SIZES = (25, 50, 100, 200)
#: a cursor longer than this is not one of ours
MAX_CURSOR = 400
BROKEN = "The page link is broken or too old; this is the first page."


class BadCursor(ValueError):
    """A link's cursor that is not one of ours (edited, forged or from another list)."""


@dataclass(frozen=True, slots=True)
class Key:
    """One column of a list's order; ``kind`` says how its value is written into a link."""

    column: InstrumentedAttribute[Any]
    kind: Kind

    def dump(self, value: Any) -> str:
        if self.kind == "time":
            return str(as_utc(value).isoformat())
        return str(value)

    def load(self, text: str) -> Any:
        if self.kind == "int":
            if not (text.lstrip("-").isdigit() and len(text) < 20):
                raise ValueError(text)
            return int(text)
        if self.kind == "time":
            return as_utc(datetime.fromisoformat(text))
        return text


@dataclass(frozen=True, slots=True)
class Keyset:
    """A list's order: its key columns (unique together), newest or oldest first."""

    keys: tuple[Key, ...]
    descending: bool = True

    def order(self, *, backward: bool) -> list[Any]:
        down = self.descending != backward
        return [k.column.desc() if down else k.column.asc() for k in self.keys]

    def beyond(self, values: Sequence[Any], *, backward: bool) -> Any:
        """Rows strictly past ``values`` in the direction of travel (a row-value comparison
        spelt out, which SQLite and PostgreSQL both plan on the index)."""
        down = self.descending != backward
        clauses = []
        for i, key in enumerate(self.keys):
            equal = [k.column == v for k, v in zip(self.keys[:i], values[:i], strict=True)]
            step = key.column < values[i] if down else key.column > values[i]
            clauses.append(and_(*equal, step))
        return or_(*clauses)

    def values_of(self, row: Any) -> tuple[Any, ...]:
        return tuple(getattr(row, k.column.key) for k in self.keys)

    def encode(self, values: Sequence[Any]) -> str:
        raw = json.dumps([k.dump(v) for k, v in zip(self.keys, values, strict=True)])
        return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")

    def decode(self, token: str) -> tuple[Any, ...]:
        """The key values of a link's cursor; BadCursor for anything else."""
        if len(token) > MAX_CURSOR or not token.isascii():
            raise BadCursor("cursor too long")
        try:
            items = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if not isinstance(items, list) or len(items) != len(self.keys):
                raise BadCursor("not a cursor")
            if not all(isinstance(i, str) for i in items):
                raise BadCursor("not a cursor")
            return tuple(k.load(i) for k, i in zip(self.keys, items, strict=True))
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise BadCursor("not a cursor") from exc


@dataclass(frozen=True, slots=True)
class Window:
    """What the reader asked for: a page size and where to start (the cursor is still text)."""

    size: int
    after: str = ""
    before: str = ""
    #: the size was given in the link (links keep it then)
    chosen: bool = False


def window_of(params: Mapping[str, str], default: int = 50) -> Window:
    """The page a link asks for: ``size`` (one of ``SIZES``), ``after`` or ``before``."""
    text = params.get("size") or ""
    size = int(text) if text.isdigit() and int(text) in SIZES else default
    after = (params.get("after") or "")[: MAX_CURSOR + 1]
    before = "" if after else (params.get("before") or "")[: MAX_CURSOR + 1]
    return Window(size=size, after=after, before=before, chosen=size != default)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, in display order, with the cursors of its neighbours."""

    rows: list[T]
    size: int
    #: the cursor of the following page (``after=``), None on the last one
    next: str | None
    #: the cursor of the preceding page (``before=``), None on the first one
    previous: str | None
    #: how many rows the whole list has (with its filters), when it was counted
    total: int | None = None
    #: rows looked at to fill this page (more than ``rows`` when a filter dropped some)
    scanned: int = 0
    #: the link's cursor could not be read: this is the first page instead
    problem: str | None = None
    #: this is the list's first page (no cursor was followed)
    first: bool = True
    #: the reader chose the page size (the links keep it)
    chosen: bool = False

    @property
    def sizes(self) -> tuple[int, ...]:
        return SIZES

    def query(self, filters: Mapping[str, str], which: Literal["next", "previous", "first"]) -> str:
        """The query string of a neighbouring page (or the first), keeping the filters."""
        kept = {k: v for k, v in filters.items() if v and k not in ("after", "before", "size")}
        if self.chosen:
            kept["size"] = str(self.size)
        if which == "next" and self.next:
            kept["after"] = self.next
        elif which == "previous" and self.previous:
            kept["before"] = self.previous
        return urlencode(kept)


@dataclass
class _Run(Generic[T]):
    kept: list[T]
    #: the key values of the first and the last row looked at, in the direction of travel
    first: tuple[Any, ...] | None
    last: tuple[Any, ...] | None
    #: rows lie beyond the last one looked at
    more: bool
    scanned: int


async def _scan(
    db: AsyncSession,
    query: Select[Any],
    keyset: Keyset,
    start: tuple[Any, ...] | None,
    *,
    backward: bool,
    size: int,
    keep: Callable[[Any], T | None] | None,
    scan_limit: int | None,
) -> _Run[T]:
    ordered = query.order_by(None).order_by(*keyset.order(backward=backward))
    # unfiltered, one row past the page tells whether more follow; filtered, chunks of rows
    chunk = size + 1 if keep is None else max(size, 200)
    position = start
    run: _Run[T] = _Run([], None, None, False, 0)
    while True:
        rest = ordered
        if position is not None:
            rest = ordered.where(keyset.beyond(position, backward=backward))
        batch = list((await db.execute(rest.limit(chunk))).scalars())
        for index, row in enumerate(batch):
            position = keyset.values_of(row)
            run.scanned += 1
            run.first = run.first or position
            run.last = position
            value = row if keep is None else keep(row)
            if value is not None:
                run.kept.append(value)
            if len(run.kept) == size or (scan_limit is not None and run.scanned >= scan_limit):
                if index + 1 < len(batch):
                    run.more = True
                else:
                    beyond = ordered.where(keyset.beyond(position, backward=backward)).limit(1)
                    run.more = (await db.execute(beyond)).first() is not None
                return run
        if len(batch) < chunk:
            return run


async def fetch(
    db: AsyncSession,
    query: Select[Any],
    keyset: Keyset,
    window: Window,
    *,
    count: bool = False,
    keep: Callable[[Any], T | None] | None = None,
    scan_limit: int | None = None,
) -> Page[Any]:
    """The page of ``query`` (a ``select`` of one mapped class, filtered, any order) that
    ``window`` asks for, in ``keyset`` order.

    ``keep`` (optional) maps a row to what the page shows, or None to leave it out; a page
    then stops after ``scan_limit`` rows looked at even when not full (its next link goes on
    from there). ``count`` adds the number of rows of the whole list.
    """
    problem = None
    start: tuple[Any, ...] | None = None
    backward = bool(window.before)
    cursor = window.before or window.after
    if cursor:
        try:
            start = keyset.decode(cursor)
        except BadCursor:
            problem, backward = BROKEN, False

    async def scan(start: tuple[Any, ...] | None, backward: bool) -> _Run[Any]:
        return await _scan(
            db,
            query,
            keyset,
            start,
            backward=backward,
            size=window.size,
            keep=keep,
            scan_limit=scan_limit,
        )

    run = await scan(start, backward)
    if backward and not run.more:
        # the top of the list was reached going back: show the first page, whole
        start, backward = None, False
        run = await scan(None, False)
    if backward:
        rows = list(reversed(run.kept))
        following = keyset.encode(run.first) if run.first is not None else None
        preceding = keyset.encode(run.last) if run.last is not None else None
    else:
        rows = run.kept
        following = keyset.encode(run.last) if run.more and run.last is not None else None
        preceding = None
        if start is not None and run.first is not None:
            preceding = keyset.encode(run.first)
    total = None
    if count:
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        total = int((await db.execute(counted)).scalar_one())
    return Page(
        rows=rows,
        size=window.size,
        next=following,
        previous=preceding,
        total=total,
        scanned=run.scanned,
        problem=problem,
        first=start is None,
        chosen=window.chosen,
    )
