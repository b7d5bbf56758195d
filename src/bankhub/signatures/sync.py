"""Key sources: an app's public keys synced from a URL the partner keeps (docs/signatures.md).

A source is fetched (``signatures.fetch``) every ``BANKHUB_SIGNATURE_SYNC_SECONDS`` by the
background runner's :class:`KeySourceSweep`, on demand from the CLI and the dashboard, and once
when it is added. The fetch holds no unit of work open; its outcome is applied in one.

- **A good answer** (200 with keys, or 304 to ``If-None-Match``) makes the source's active keys
  exactly the keys it lists: new ones are added (with the source's ``required`` choice), keys
  gone from it are revoked (``revoked_by`` = ``sync:ks_…``), unchanged ones keep their row and
  public id. Revocation counts from the next request in every process, since only an app's
  *absence* of keys is cached (``services.KeyCache``).
- **An empty answer** (a 200 with no entry at all: an empty body, as GitHub serves for a user
  with no keys, or a JWKS with ``"keys": []``) is the partner saying "no keys": the source's
  keys are revoked. A partner who removes every key where they keep them expects none to work.
- **A failure** (no answer, a timeout, a status other than 200 and 304, a body over the cap, a
  body that is neither form, or one whose entries are all refused, which is more likely a broken
  page than a decision) changes no key: the last good set is kept, never widened, until
  ``BANKHUB_SIGNATURE_SYNC_GRACE_SECONDS`` after the last good sync; then the source's keys are
  revoked (fail closed) and come back only with a good sync. The first failure after a good sync,
  and the grace running out, are mailed to the team (``dashboard.alerts``) and shown on the
  Signatures page.

A key a person revoked (API, CLI or dashboard) stays revoked: a sync does not bring it back while
its source still lists it. Every change is audited with the source's URL (user information, if
any, redacted).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.clock import Clock, as_utc
from bankhub.config import Settings
from bankhub.dashboard.alerts import KeySourceAlert, queue_key_source_alert
from bankhub.db.engine import Database
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.partners.models import App
from bankhub.signatures import services
from bankhub.signatures.fetch import Answer, Document, FetchFailed, KeyFetcher, read, redact
from bankhub.signatures.models import SignatureKey, SignatureKeySource
from bankhub.webhooks.ssrf import UnsafeUrl

log = logging.getLogger("bankhub.signatures")

#: sources an app may name
MAX_SOURCES = 3
#: a key's ``source`` column holds ``synced:`` and the URL in 300 characters
MAX_URL = 290
SYNCED = "synced:"
#: sources fetched at once by one sweep
CONCURRENCY = 4
#: sources taken by one sweep (the next sweep takes the rest)
BATCH = 100

OK, PENDING, FAILING, EXPIRED = "ok", "pending", "failing", "expired"


def state(source: SignatureKeySource) -> str:
    """``pending`` (never synced), ``ok``, ``failing`` (within its grace) or ``expired``."""
    if source.expired_at is not None:
        return EXPIRED
    if source.failing_since is not None:
        return FAILING
    return OK if source.last_good_at is not None else PENDING


def grace_until(source: SignatureKeySource, grace: timedelta) -> datetime | None:
    """When a failing source's keys are revoked unless a sync succeeds first."""
    if source.failing_since is None or source.last_good_at is None or source.expired_at:
        return None
    return as_utc(source.last_good_at) + grace


def _actor(source: SignatureKeySource) -> str:
    return f"sync:{source.public_id}"


def _detail(source: SignatureKeySource, **more: Any) -> dict[str, Any]:
    return {"url": redact(source.url), "required": source.required, **more}


def _audit(
    session: AsyncSession,
    source: SignatureKeySource,
    action: str,
    now: datetime,
    actor: str,
    **more: Any,
) -> None:
    audit.record(
        session,
        now=now,
        actor=actor,
        action=action,
        target_type="signature_key_source",
        target_id=source.public_id,
        app_id=source.app_id,
        detail=_detail(source, **more),
        request_id=audit.request_id(),
    )


def fetcher_for(settings: Settings, http: httpx.AsyncClient) -> KeyFetcher:
    """The hub's outbound client behind the SSRF guard; development (and tests) allow plain
    http and loopback and private hosts, as for webhooks."""
    dev = settings.is_dev
    return KeyFetcher(http, allow_private=dev, allow_http=dev)


# --- managing sources -----------------------------------------------------------------------------


async def list_sources(session: AsyncSession, app_id: int) -> list[SignatureKeySource]:
    return list(
        await session.scalars(
            select(SignatureKeySource)
            .where(SignatureKeySource.app_id == app_id)
            .order_by(SignatureKeySource.id)
        )
    )


async def get_source(session: AsyncSession, app_id: int, public_id: str) -> SignatureKeySource:
    source = await session.scalar(
        select(SignatureKeySource).where(
            SignatureKeySource.app_id == app_id, SignatureKeySource.public_id == public_id
        )
    )
    if source is None:
        raise NotFound(ErrorCode.NOT_FOUND, "No such signature key source", {"id": public_id})
    return source


async def key_counts(session: AsyncSession, app_id: int) -> dict[str, int]:
    """The active keys each source of the app brought, by the source's public id."""
    counts: dict[str, int] = {}
    for source_id in await session.scalars(
        select(SignatureKey.source_id).where(
            SignatureKey.app_id == app_id,
            SignatureKey.revoked_at.is_(None),
            SignatureKey.source_id.is_not(None),
        )
    ):
        if source_id is not None:
            counts[source_id] = counts.get(source_id, 0) + 1
    return counts


async def check_url(url: str, fetcher: KeyFetcher) -> None:
    """DataInvalid (naming ``url``) unless ``url`` may be a key source: the SSRF guard's checks,
    with its host resolved now (it is checked again at every fetch: DNS can change)."""
    problem: str | None = None
    if len(url) > MAX_URL:
        problem = f"longer than {MAX_URL} characters"
    else:
        try:
            await fetcher.check(url)
        except UnsafeUrl as exc:
            problem = str(exc)
        except TimeoutError:
            problem = "its host did not resolve in time"
    if problem is not None:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"This URL cannot be a key source: {problem}",
            {"problems": ["url"], "url": redact(url)},
        )


async def add_source(
    session: AsyncSession,
    app_id: int,
    *,
    url: str,
    required: bool,
    fetcher: KeyFetcher,
    now: datetime,
    actor: str,
    by: dict[str, Any] | None = None,
) -> SignatureKeySource:
    """Name a URL that serves the app's keys; it is due for a sync at once."""
    await check_url(url, fetcher)
    existing = await list_sources(session, app_id)
    if any(s.url == url for s in existing):
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "The app already has this key source",
            {"problems": ["url"]},
        )
    if len(existing) >= MAX_SOURCES:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"An app has at most {MAX_SOURCES} key sources; remove one first",
            {"problems": ["url"]},
        )
    source = SignatureKeySource(
        app_id=app_id,
        public_id="ks_" + secrets.token_hex(12),
        url=url,
        required=required,
        created_at=now,
        created_by=actor,
        due_at=now,
        skipped=[],
    )
    session.add(source)
    await session.flush()
    _audit(session, source, "signature_source.added", now, actor, by=by or {})
    return source


async def remove_source(
    session: AsyncSession,
    app_id: int,
    public_id: str,
    *,
    now: datetime,
    actor: str,
    by: dict[str, Any] | None = None,
) -> SignatureKeySource:
    """Forget a source; the keys it brought are revoked at once."""
    source = await get_source(session, app_id, public_id)
    for key in await _keys_of(session, source):
        await services.revoke_key(
            session, app_id, key.public_id, now=now, actor=actor, by={"source_removed": public_id}
        )
    _audit(session, source, "signature_source.removed", now, actor, by=by or {})
    await session.execute(delete(SignatureKeySource).where(SignatureKeySource.id == source.id))
    return source


async def _keys_of(session: AsyncSession, source: SignatureKeySource) -> list[SignatureKey]:
    return list(
        await session.scalars(
            select(SignatureKey)
            .where(
                SignatureKey.app_id == source.app_id,
                SignatureKey.source_id == source.public_id,
                SignatureKey.revoked_at.is_(None),
            )
            .order_by(SignatureKey.id)
        )
    )


# --- syncing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one sync of a source did."""

    state: str
    added: int = 0
    revoked: int = 0
    error: str | None = None


async def sync_source(
    db: Database, clock: Clock, fetcher: KeyFetcher, source_id: int, *, grace: timedelta
) -> Outcome | None:
    """Fetch source ``source_id`` (its row id) and apply the answer; None if it is gone."""
    async with db.transaction() as session:
        source = await session.get(SignatureKeySource, source_id)
        if source is None:
            return None
        url, etag = source.url, source.etag
    document: Document | None = None
    answer: Answer | None = None
    error: str | None = None
    try:
        answer = await fetcher.fetch(url, etag)
        if answer.status == 200:
            # parsing and checking each key costs up to ~0.4 ms (a 4096-bit RSA key): a 64 KiB
            # document is read off the event loop
            document = await asyncio.to_thread(read, answer)
            if not document.keys and not document.empty:
                error = "no key in the answer could be used: " + "; ".join(document.skipped[:3])
    except FetchFailed as exc:
        error = str(exc)
    async with db.transaction(write=True) as session:
        # one apply at a time per source (a "sync now" beside the runner's): PostgreSQL locks
        # the row, SQLite has one writer anyway
        source = await session.get(SignatureKeySource, source_id, with_for_update=True)
        if source is None or source.url != url:
            return None
        now = clock()
        source.last_attempt_at = now
        if error is not None or answer is None:
            return await _failed(session, source, error or "no answer", now, grace)
        return await _good(session, source, answer, document, now)


async def _good(
    session: AsyncSession,
    source: SignatureKeySource,
    answer: Answer,
    document: Document | None,
    now: datetime,
) -> Outcome:
    actor = _actor(source)
    added = revoked = 0
    if document is not None:  # a 304 changes no key
        mine = {k.keyid: k for k in await _keys_of(session, source)}
        listed = {k.key.keyid: k for k in document.keys}
        for keyid, key in mine.items():
            if keyid not in listed:
                await services.revoke_key(
                    session,
                    source.app_id,
                    key.public_id,
                    now=now,
                    actor=actor,
                    by={"source": redact(source.url), "reason": "gone from the source"},
                )
                revoked += 1
        withheld = set(
            await session.scalars(
                select(SignatureKey.keyid).where(
                    SignatureKey.app_id == source.app_id,
                    SignatureKey.source_id == source.public_id,
                    SignatureKey.revoked_at.is_not(None),
                    SignatureKey.revoked_by.not_like("sync:%"),
                )
            )
        )
        for keyid, entry in listed.items():
            if keyid in mine:
                continue
            if keyid in withheld:
                document.skip(f"{entry.key.fingerprint}: revoked here by a person; not taken back")
                continue
            try:
                await _add(session, source, entry.key.pem, entry.label, now, actor)
            except DomainError as exc:
                if "label" in exc.extra.get("problems", []):
                    await _add(session, source, entry.key.pem, None, now, actor)
                else:
                    document.skip(f"{entry.key.fingerprint}: {exc.message}")
                    continue
            added += 1
        source.skipped = list(document.skipped)
        source.etag = answer.etag[:200] if answer.etag else None
    if source.failing_since is not None or source.expired_at is not None:
        _audit(
            session,
            source,
            "signature_source.recovered",
            now,
            actor,
            failing_since=source.failing_since.isoformat() if source.failing_since else None,
        )
    source.last_good_at = now
    source.last_error = None
    source.failing_since = None
    source.expired_at = None
    if added or revoked:
        log.info(
            "key source %s of app %d: %d keys added, %d revoked",
            source.public_id,
            source.app_id,
            added,
            revoked,
        )
    return Outcome(OK, added, revoked)


async def _add(
    session: AsyncSession,
    source: SignatureKeySource,
    pem: str,
    label: str | None,
    now: datetime,
    actor: str,
) -> None:
    await services.add_key(
        session,
        source.app_id,
        public_key=pem,
        label=label,
        algorithm=None,
        required=source.required,
        now=now,
        actor=actor,
        by={"source": redact(source.url)},
        source=SYNCED + redact(source.url),
        source_id=source.public_id,
    )


async def _failed(
    session: AsyncSession,
    source: SignatureKeySource,
    error: str,
    now: datetime,
    grace: timedelta,
) -> Outcome:
    actor = _actor(source)
    source.last_error = error[:500]
    first = source.failing_since is None
    if first:
        source.failing_since = now
        _audit(session, source, "signature_source.failed", now, actor, error=error[:300])
        log.warning("key source %s of app %d failed: %s", source.public_id, source.app_id, error)
        if source.last_good_at is not None:
            await _alert(session, source, "failing", error, now, grace)
    revoked = 0
    last_good = source.last_good_at
    if source.expired_at is None and last_good is not None and now >= as_utc(last_good) + grace:
        for key in await _keys_of(session, source):
            await services.revoke_key(
                session,
                source.app_id,
                key.public_id,
                now=now,
                actor=actor,
                by={"source": redact(source.url), "reason": "grace expired"},
            )
            revoked += 1
        source.expired_at = now
        # the next good answer must be a whole one: a 304 would not bring the keys back
        source.etag = None
        _audit(session, source, "signature_source.grace_expired", now, actor, revoked=revoked)
        log.warning(
            "key source %s of app %d: grace expired, %d keys revoked",
            source.public_id,
            source.app_id,
            revoked,
        )
        await _alert(session, source, "expired", error, now, grace)
    return Outcome(state(source), 0, revoked, error)


async def _alert(
    session: AsyncSession,
    source: SignatureKeySource,
    event: str,
    error: str,
    now: datetime,
    grace: timedelta,
) -> None:
    app = await session.get(App, source.app_id)
    await queue_key_source_alert(
        session,
        KeySourceAlert(
            event=event,
            app_name=app.name if app else f"app {source.app_id}",
            client_id=app.client_id if app else "",
            url=redact(source.url),
            error=error[:300],
            at=now,
            grace_until=grace_until(source, grace),
        ),
        now,
    )


async def claim_due(db: Database, now: datetime, every: timedelta, limit: int) -> list[int]:
    """Take the sources due now: each is claimed by moving its ``due_at`` on with a conditional
    update, so two runners never fetch the same source in one period."""
    async with db.transaction() as session:
        due = list(
            await session.execute(
                select(SignatureKeySource.id, SignatureKeySource.due_at)
                .where(SignatureKeySource.due_at <= now)
                .order_by(SignatureKeySource.due_at)
                .limit(limit)
            )
        )
    taken: list[int] = []
    for source_id, due_at in due:
        async with db.transaction(write=True) as session:
            result = await session.execute(
                update(SignatureKeySource)
                .where(SignatureKeySource.id == source_id, SignatureKeySource.due_at == due_at)
                .values(due_at=now + every)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                taken.append(source_id)
    return taken


class KeySourceSweep:
    """The background job: the sources due are fetched and applied, :data:`CONCURRENCY` at once.
    Any number of runners may sweep; each source is fetched by the one that claimed it."""

    name = "signature-key-sources"
    first = False

    def __init__(
        self,
        db: Database,
        clock: Clock,
        fetcher: KeyFetcher,
        *,
        every: float,
        grace: timedelta,
    ) -> None:
        self.db = db
        self.clock = clock
        self.fetcher = fetcher
        self.period = timedelta(seconds=every)
        self.grace = grace
        #: a sweep looks for due sources more often than each is due, so that a source added
        #: (due at once) or a sync interval's end is not missed by a whole period
        self.every = min(every, 60.0)

    async def sweep(self) -> dict[str, int]:
        taken = await claim_due(self.db, self.clock(), self.period, BATCH)
        slots = asyncio.Semaphore(CONCURRENCY)
        tally: dict[str, int] = {}

        async def one(source_id: int) -> None:
            async with slots:
                try:
                    outcome = await sync_source(
                        self.db, self.clock, self.fetcher, source_id, grace=self.grace
                    )
                except Exception:
                    log.exception("syncing key source %d failed", source_id)
                    return
                if outcome is not None:
                    tally[outcome.state] = tally.get(outcome.state, 0) + 1

        await asyncio.gather(*(one(source_id) for source_id in taken))
        return tally
