"""Imported banks' logos, fetched once and served from bankhub's own origin.

A registry or GoCardless gives a bank's logo as an ``https://`` URL on another host. The connect
page's Content-Security-Policy (``img-src 'self' data:``) loads no image from there, and an end
user's browser should not tell a logo host which bank they are about to link. So bankhub
fetches each logo itself, checks it, and keeps it in ``bank_logos``:

- **fetched** through the same guard as partner webhooks (``webhooks.ssrf``): https only, every
  address the name resolves to must be public (loopback and private ranges only where the caller
  allows them: dev and test), the request goes to the checked address with the real name as SNI
  and ``Host``, redirects are followed only to URLs that pass the same checks (at most
  :data:`MAX_REDIRECTS`), the whole exchange within :data:`FETCH_SECONDS` and the body read to
  at most :data:`MAX_BODY_BYTES`;
- **checked** by decoding it with Pillow (a maintained decoder; a signature sniff would pass a
  truncated or hostile file): PNG, JPEG, GIF, WebP, ICO or BMP, at most :data:`MAX_SIDE` pixels
  a side before decoding. SVG is refused: it is a document that can carry script, and
  rasterising it would need a renderer of its own;
- **re-encoded** as a PNG of at most :data:`LOGO_SIDE` pixels a side (the size of the drawn
  logos), so what is served is our own encoding of the pixels, never the host's bytes, with no
  metadata carried over.

Fetching never holds a unit of work open: the import commits first, then each logo is fetched
and stored in a short transaction of its own, a few at once (:data:`CONCURRENCY`), and a batch
stops starting new fetches at its deadline. A host that hangs costs one slot for at most
:data:`FETCH_SECONDS`; a refused logo is recorded with its reason (nothing of its bytes is kept)
and tried again a day later; a kept one is fetched again after :data:`STALE_AFTER`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.banks.models import Bank, BankLogo
from bankhub.clock import Clock, as_utc
from bankhub.db.engine import Database
from bankhub.webhooks.guarded import Limits, Refused, guarded_get
from bankhub.webhooks.ssrf import Resolver, UnsafeUrl

log = logging.getLogger("bankhub.banks.logos")

#: the whole exchange with a logo host, redirects included
FETCH_SECONDS = 10.0
#: the most of a logo's body that is read; a longer one is refused
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 3
#: a larger image is refused before its pixels are decoded (a decompression bomb)
MAX_SIDE = 4096
#: what is stored and served: at most this many pixels a side
LOGO_SIDE = 128
#: logos fetched at once
CONCURRENCY = 4
#: the seconds after which an import's logo batch starts no new fetch (the sweep goes on later)
IMPORT_BUDGET = 120.0
#: a kept logo is fetched again after this long; a refused one after RETRY_AFTER
STALE_AFTER = timedelta(days=30)
RETRY_AFTER = timedelta(days=1)
#: the formats Pillow may decode here (never a vector or a document format)
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "ICO", "BMP")
ACCEPT = "image/png, image/jpeg, image/gif, image/webp, image/x-icon, image/bmp;q=0.9"


class LogoRefused(Exception):
    """A logo bankhub does not keep; the message says why (for the operator's report)."""


@dataclass(frozen=True, slots=True)
class Logo:
    """A checked logo, re-encoded."""

    png: bytes
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


def _looks_like_svg(head: bytes) -> bool:
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<") and (b"<svg" in text or b"<!doctype svg" in text)


def _decode(data: bytes) -> Logo:
    """The image ``data`` as our own PNG, or LogoRefused (runs in a worker thread)."""
    if _looks_like_svg(data):
        raise LogoRefused("SVG is not accepted (it can carry script); bankhub keeps raster images")
    try:
        # open() reads the header only; the size is checked before any pixel is decoded
        # (Pillow's own bomb check, at 89 M pixels, would let far larger logos through)
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
            if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
                raise LogoRefused(
                    f"the image is {width}×{height} pixels, more than {MAX_SIDE} a side"
                )
            image.seek(0)  # the first frame of an animation
            image.load()
            pixels = ImageOps.exif_transpose(image).convert("RGBA")
    except LogoRefused:
        raise
    except UnidentifiedImageError:
        raise LogoRefused(f"not an image bankhub accepts ({', '.join(FORMATS)})") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many kinds for a broken file
        raise LogoRefused(f"the image cannot be decoded: {type(exc).__name__}") from None
    pixels.thumbnail((LOGO_SIDE, LOGO_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    pixels.save(out, format="PNG", optimize=True)
    return Logo(out.getvalue(), pixels.width, pixels.height)


async def check_image(data: bytes) -> Logo:
    """Decode ``data`` and re-encode it (off the event loop: decoding costs milliseconds)."""
    if not data:
        raise LogoRefused("the answer has no body")
    return await asyncio.to_thread(_decode, data)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


@dataclass
class LogoFetcher:
    """Fetches logos over ``http`` (the hub's outbound client: TLS checked against
    ``BANKHUB_CA_BUNDLE`` or the system store, no ambient proxy)."""

    http: httpx.AsyncClient
    #: dev and test: loopback and private hosts are allowed (never in production)
    allow_private: bool = False
    resolver: Resolver | None = None
    timeout: float = FETCH_SECONDS

    async def fetch(self, url: str) -> Logo:
        """The logo at ``url``, checked and re-encoded, or LogoRefused saying why."""
        try:
            async with asyncio.timeout(self.timeout):
                data = await self._download(url)
        except TimeoutError:
            raise LogoRefused(f"no whole answer within {self.timeout:g} s") from None
        except (httpx.HTTPError, OSError) as exc:
            raise LogoRefused(_describe(exc)) from None
        return await check_image(data)

    async def _download(self, url: str) -> bytes:
        try:
            got = await guarded_get(
                self.http,
                url,
                # the fetch's own deadline (above) ends it first, whichever step it is at
                Limits(ACCEPT, MAX_BODY_BYTES, MAX_REDIRECTS, self.timeout + 1),
                allow_private=self.allow_private,
                allow_http=False,
                resolver=self.resolver,
            )
        except UnsafeUrl as exc:
            raise LogoRefused(f"{url[:200]}: {exc}") from None
        except Refused as exc:
            raise LogoRefused(str(exc)) from None
        return got.body


# --- what is stored -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredLogo:
    png: bytes
    sha256: str


async def stored_logo(session: AsyncSession, bank_id: int) -> StoredLogo | None:
    """The kept PNG of bank ``bank_id``, if one was ever fetched."""
    row = (
        await session.execute(
            sa.select(BankLogo.png, BankLogo.sha256).where(
                BankLogo.bank_id == bank_id, BankLogo.png.is_not(None)
            )
        )
    ).one_or_none()
    if row is None or row.png is None or row.sha256 is None:
        return None
    return StoredLogo(row.png, row.sha256)


@dataclass(frozen=True, slots=True)
class Refusal:
    bank_id: int
    url: str
    reason: str


@dataclass(slots=True)
class LogoReport:
    """What a batch of fetches came to."""

    kept: list[int] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    #: due, but not started before the batch's deadline (the sweep takes them later)
    deferred: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "kept": len(self.kept),
            "refused": [{"id": r.bank_id, "url": r.url, "reason": r.reason} for r in self.refused],
            "deferred": len(self.deferred),
        }


async def due(
    session: AsyncSession, now: datetime, ids: Iterable[int] | None = None, limit: int | None = None
) -> list[tuple[int, str]]:
    """Banks with a logo URL whose logo was never fetched, was fetched from another URL, is
    older than :data:`STALE_AFTER`, or was refused more than :data:`RETRY_AFTER` ago;
    ``ids`` narrows them (an import's added and updated banks)."""
    query = (
        sa.select(Bank.id, Bank.logo_url, BankLogo.url, BankLogo.fetched_at, BankLogo.checked_at)
        .add_columns(BankLogo.failure)
        .outerjoin(BankLogo, BankLogo.bank_id == Bank.id)
        .where(Bank.logo_url.is_not(None))
        .order_by(Bank.id)
    )
    if ids is not None:
        query = query.where(Bank.id.in_(list(ids)))
    found: list[tuple[int, str]] = []
    rows = await session.execute(query)
    for bank_id, logo_url, url, fetched_at, checked_at, failure in rows:
        if not logo_url:
            continue
        never = checked_at is None or url != logo_url
        stale = (
            failure is None and fetched_at is not None and as_utc(fetched_at) <= now - STALE_AFTER
        )
        retry = (
            failure is not None
            and checked_at is not None
            and as_utc(checked_at) <= now - RETRY_AFTER
        )
        if never or stale or retry:
            found.append((bank_id, logo_url))
            if limit is not None and len(found) >= limit:
                break
    return found


async def _record(
    db: Database, clock: Clock, bank_id: int, url: str, logo: Logo | None, reason: str | None
) -> None:
    async with db.transaction(write=True) as session:
        row = await session.get(BankLogo, bank_id)
        if row is None:
            row = BankLogo(bank_id=bank_id)
            session.add(row)
        now = clock()
        row.url = url
        row.checked_at = now
        row.failure = reason
        if logo is not None:
            row.png, row.sha256 = logo.png, logo.sha256
            row.width, row.height = logo.width, logo.height
            row.fetched_at = now
        # a refused logo leaves the bank's earlier one, if any: it is still its logo


async def fetch_logos(
    db: Database,
    clock: Clock,
    fetcher: LogoFetcher,
    banks: Sequence[tuple[int, str]],
    *,
    budget: float,
) -> LogoReport:
    """Fetch and keep the logos of ``banks`` (id, URL), :data:`CONCURRENCY` at once; none is
    started after ``budget`` seconds (those are ``deferred``), and none runs longer than the
    fetcher's timeout, so the batch ends within ``budget`` plus that timeout."""
    report = LogoReport()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(bank_id: int, url: str) -> None:
        async with slots:
            if loop.time() >= deadline:
                report.deferred.append(bank_id)
                return
            try:
                logo = await fetcher.fetch(url)
            except LogoRefused as exc:
                reason = str(exc)
                log.warning("bank %d: logo %s refused: %s", bank_id, url[:200], reason)
                report.refused.append(Refusal(bank_id, url, reason))
                await _record(db, clock, bank_id, url, None, reason)
                return
            await _record(db, clock, bank_id, url, logo, None)
            report.kept.append(bank_id)

    await asyncio.gather(*(one(bank_id, url) for bank_id, url in banks))
    report.kept.sort()
    report.deferred.sort()
    report.refused.sort(key=lambda r: r.bank_id)
    if banks:
        log.info(
            "bank logos: %d kept, %d refused, %d deferred",
            len(report.kept),
            len(report.refused),
            len(report.deferred),
        )
    return report


async def refresh_logos(
    db: Database,
    clock: Clock,
    fetcher: LogoFetcher,
    ids: Iterable[int] | None = None,
    *,
    limit: int | None = None,
    budget: float = 120.0,
) -> LogoReport:
    """Fetch the logos that are :func:`due` (of ``ids``, at most ``limit``)."""
    async with db.transaction() as session:
        banks = await due(session, clock(), ids, limit)
    return await fetch_logos(db, clock, fetcher, banks, budget=budget)


class LogoSweep:
    """The background job: a bounded batch of due logos every few minutes (a bank imported
    while its logo host was down, a refused logo a day later, a stale one a month later).
    Two runners sweeping at once may fetch the same logo twice; each stores a whole row."""

    name = "bank-logos"
    first = False
    #: logos per sweep, and the seconds after which a sweep starts no new fetch
    batch = 50
    budget = 60.0

    def __init__(self, db: Database, clock: Clock, fetcher: LogoFetcher, every: float = 300.0):
        self.db = db
        self.clock = clock
        self.fetcher = fetcher
        self.every = every

    async def sweep(self) -> LogoReport:
        return await refresh_logos(
            self.db, self.clock, self.fetcher, limit=self.batch, budget=self.budget
        )
