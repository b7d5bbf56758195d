"""Imported banks' logos: fetched once from a loopback https host, checked by decoding, kept
as our own PNG, and served from bankhub's origin (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from bankhub.banks import logos, services
from bankhub.banks.formats import BankRecord
from bankhub.banks.models import BankLogo
from bankhub.catalogue import drawing
from bankhub.db import tenancy
from bankhub.jobs.runner import Runner
from tests.banks.logo_host import LogoHost, picture
from tests.conftest import Harness

#: what the media route's answers carry
IMAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'none'; sandbox"
HANG_SECONDS = 1.0

PATHS = (
    "/logo.png",
    "/logo.jpg",
    "/mislabelled.png",
    "/moved.png",
    "/script.svg",
    "/not-an-image.png",
    "/huge.png",
    "/hangs.png",
    "/to-http.png",
)
REFUSED = {
    "/script.svg": "SVG is not accepted",
    "/not-an-image.png": "not an image bankhub accepts",
    "/huge.png": "past the 2048 KiB bankhub reads",
    "/hangs.png": f"no whole answer within {HANG_SECONDS:g} s",
    "/to-http.png": "URL scheme must be https",
}


def _record(index: int, url: str) -> BankRecord:
    return BankRecord(
        key=f"bankhub:logo-{index}",
        line=index,
        source="bankhub",
        name=f"Logo Bank {index}",
        bic="WELADED1BUB",
        blz=None,
        country_code="DE",
        connector="xs2a",
        params={"base_url": "https://xs2a.example/psd2"},
        logo_url=url,
    )


async def _import(h: Harness, host: LogoHost) -> dict[str, int]:
    records = [_record(i, host.url(path)) for i, path in enumerate(PATHS, start=1)]
    async with h.hub.db.transaction(write=True) as session:
        outcome = await services.import_records(session, h.clock, records)
    h.hub.live.invalidate()
    return dict(zip(PATHS, outcome.added, strict=True))


async def _kept(h: Harness) -> dict[int, BankLogo]:
    async with h.hub.db.transaction() as session:
        rows = (await session.execute(select(BankLogo))).scalars().all()
        return {row.bank_id: row for row in rows}


async def test_an_import_keeps_the_good_logos_and_refuses_the_rest_with_reasons(
    harness: Harness, host: LogoHost, outbound: httpx.AsyncClient
) -> None:
    h = harness
    ids = await _import(h, host)
    fetcher = logos.LogoFetcher(outbound, allow_private=True, timeout=HANG_SECONDS)
    started = time.monotonic()
    report = await logos.refresh_logos(h.hub.db, h.clock, fetcher, budget=30.0)
    elapsed = time.monotonic() - started
    # a hanging host and a 20 MB body cost one slot each for at most the fetch timeout
    assert elapsed < HANG_SECONDS + 5, elapsed
    good = [ids[p] for p in ("/logo.png", "/logo.jpg", "/mislabelled.png", "/moved.png")]
    assert report.kept == sorted(good)
    assert report.deferred == []
    reasons = {r.bank_id: r.reason for r in report.refused}
    assert set(reasons) == {ids[p] for p in REFUSED}
    for path, words in REFUSED.items():
        assert words in reasons[ids[path]], (path, reasons[ids[path]])

    stored = await _kept(h)
    for path, words in REFUSED.items():
        row = stored[ids[path]]
        assert (row.png, row.sha256, row.fetched_at) == (None, None, None)  # nothing kept
        assert row.failure is not None
        assert words in row.failure
    sizes = {}
    for bank_id in good:
        row = stored[bank_id]
        assert row.png is not None
        assert row.failure is None
        with Image.open(io.BytesIO(row.png)) as image:
            assert image.format == "PNG"
            sizes[bank_id] = image.size
    assert sizes[ids["/logo.png"]] == (128, 85)  # 300×200, within 128 a side
    assert sizes[ids["/logo.jpg"]] == (128, 128)
    assert stored[ids["/logo.png"]].png != picture(300, 200, "PNG")  # our encoding, not theirs

    # served from bankhub: the kept PNG, or the drawn logo; never a redirect
    await h.hub.ready()
    for bank_id in good:
        answer = await h.client.get(f"/media/services/bank-{bank_id}-logo.png")
        assert answer.status_code == 200
        assert answer.content == stored[bank_id].png
        assert answer.headers["content-type"] == "image/png"
        assert answer.headers["etag"] == f'"{stored[bank_id].sha256}"'
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-security-policy"] == IMAGE_CSP
        assert answer.headers["cache-control"] == "public, max-age=86400"
        again = await h.client.get(
            f"/media/services/bank-{bank_id}-logo.png",
            headers={"if-none-match": answer.headers["etag"]},
        )
        assert (again.status_code, again.content) == (304, b"")
    service = h.hub.catalogue.get(ids["/script.svg"])
    assert service is not None
    drawn = await h.client.get(f"/media/services/bank-{ids['/script.svg']}-logo.png")
    assert drawn.status_code == 200
    assert drawn.content == drawing.logo(service)
    assert drawn.headers["content-security-policy"] == IMAGE_CSP
    assert "location" not in drawn.headers


async def test_refused_logos_are_tried_again_a_day_later_and_kept_ones_a_month_later(
    harness: Harness, host: LogoHost, outbound: httpx.AsyncClient
) -> None:
    h = harness
    ids = await _import(h, host)
    fetcher = logos.LogoFetcher(outbound, allow_private=True, timeout=HANG_SECONDS)
    await logos.refresh_logos(h.hub.db, h.clock, fetcher, budget=30.0)
    asked = len(host.asked)
    assert (await logos.refresh_logos(h.hub.db, h.clock, fetcher, budget=30.0)).kept == []
    assert len(host.asked) == asked  # nothing due: no logo host hears from bankhub
    h.clock.advance(days=1, minutes=1)
    async with h.hub.db.transaction() as session:
        due = await logos.due(session, h.clock())
    assert sorted(bank_id for bank_id, _ in due) == sorted(ids[p] for p in REFUSED)
    h.clock.advance(days=30)
    async with h.hub.db.transaction() as session:
        assert len(await logos.due(session, h.clock())) == len(PATHS)
        assert len(await logos.due(session, h.clock(), limit=3)) == 3


async def test_a_deadline_defers_what_it_did_not_start(
    harness: Harness, host: LogoHost, outbound: httpx.AsyncClient
) -> None:
    h = harness
    ids = await _import(h, host)
    fetcher = logos.LogoFetcher(outbound, allow_private=True, timeout=HANG_SECONDS)
    report = await logos.refresh_logos(h.hub.db, h.clock, fetcher, budget=0.0)
    assert (report.kept, report.refused) == ([], [])
    assert report.deferred == sorted(ids.values())
    async with h.hub.db.transaction() as session:
        assert len(await logos.due(session, h.clock())) == len(PATHS)  # still due


async def test_a_loopback_logo_host_is_refused_unless_allowed(
    host: LogoHost, outbound: httpx.AsyncClient
) -> None:
    fetcher = logos.LogoFetcher(outbound)
    with pytest.raises(logos.LogoRefused, match=r"127\.0\.0\.1, which is loopback"):
        await fetcher.fetch(host.url("/logo.png"))
    assert host.asked == []
    allowed = logos.LogoFetcher(outbound, allow_private=True)
    assert (await allowed.fetch(host.url("/logo.png"))).width == 128


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "no body"),
        (picture(300, 200, "PNG")[:200], "cannot be decoded"),
        (b"%PDF-1.7\n", "not an image bankhub accepts"),
        (b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg'/>", "SVG is not accepted"),
    ],
)
async def test_what_is_not_a_whole_raster_image_is_refused(data: bytes, words: str) -> None:
    with pytest.raises(logos.LogoRefused, match=words):
        await logos.check_image(data)


async def test_an_image_too_large_to_decode_is_refused_before_its_pixels_are() -> None:
    out = io.BytesIO()
    Image.new("1", (5000, 300)).save(out, format="PNG")  # a few KB, 1.5 M pixels
    with pytest.raises(logos.LogoRefused, match="5000×300 pixels, more than 4096 a side"):
        await logos.check_image(out.getvalue())


async def test_the_background_sweep_fetches_a_bounded_batch_of_due_logos(
    harness: Harness, host: LogoHost, outbound: httpx.AsyncClient
) -> None:
    h = harness
    ids = await _import(h, host)
    runner = Runner(h.hub)
    assert runner.logos in runner.loop.sweeps  # registered with the background work
    sweep = logos.LogoSweep(
        h.hub.db, h.clock, logos.LogoFetcher(outbound, allow_private=True, timeout=HANG_SECONDS)
    )
    sweep.batch = 4
    first = await sweep.sweep()
    assert first.kept == sorted(ids[p] for p in PATHS[:4])  # the first four due, by bank id
    assert first.refused == []
    second = await sweep.sweep()
    assert sorted(r.bank_id for r in second.refused) == sorted(ids[p] for p in PATHS[4:8])
    third = await sweep.sweep()
    assert [r.bank_id for r in third.refused] == [ids["/to-http.png"]]
    assert (await sweep.sweep()).refused == []  # nothing due until a day has passed


async def test_the_runtime_role_keeps_and_serves_logos_under_row_level_security(
    app_role_harness: Harness, host: LogoHost, outbound: httpx.AsyncClient
) -> None:
    """Banks and their logos are the operator's, read by every app's users: the runtime role,
    bound by row-level security and owning no table, stores them (the background work runs as
    it) and the public media route reads them with no app chosen."""
    h = app_role_harness
    with tenancy.everything():  # the operator's import
        ids = await _import(h, host)
    fetcher = logos.LogoFetcher(outbound, allow_private=True, timeout=HANG_SECONDS)
    report = await logos.refresh_logos(
        h.hub.db, h.clock, fetcher, [ids["/logo.png"], ids["/script.svg"]], budget=30.0
    )
    assert (report.kept, [r.bank_id for r in report.refused]) == (
        [ids["/logo.png"]],
        [ids["/script.svg"]],
    )
    await h.hub.ready()
    answer = await h.client.get(f"/media/services/bank-{ids['/logo.png']}-logo.png")
    assert answer.status_code == 200
    with Image.open(io.BytesIO(answer.content)) as image:
        assert image.size == (128, 85)
