"""The API request log: every call an app's credentials made, recorded off the request path
(one tuple in memory, written in batches), never a body, query string, header or secret,
searchable and paged newest first on the app's dashboard page, and purged after its days."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy import delete, select

from bankhub.dashboard import paging
from bankhub.dashboard.request_routes import PAGE_SIZE
from bankhub.dashboard.roles import Role
from bankhub.db import tenancy
from bankhub.jobs.runner import Runner
from bankhub.partners.models import App
from bankhub.requestlog import store
from bankhub.requestlog.buffer import RequestLog
from bankhub.requestlog.models import ApiRequest
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
#: what a caller sends that must never be recorded (a body, a query string, a header)
MARKER = "sekrit-marker-7c1f"
ROW = re.compile(r'<tr data-request="([^"]+)"')
NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
PREVIOUS = re.compile(r'<a rel="prev" href="([^"]+)"')


def _link(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1).replace("&amp;", "&") if found else None


async def _rows(h: Harness) -> list[ApiRequest]:
    with tenancy.everything():
        async with h.hub.db.transaction() as db:
            return list((await db.execute(select(ApiRequest).order_by(ApiRequest.id))).scalars())


async def _calls(h: Harness) -> None:
    """A few calls of the harness's app: answered, refused, with a body, with a query string."""
    headers = h.headers()
    ok = await h.client.get("/v2/app", headers={**headers, "X-Request-Id": "trace-ok-1"})
    assert ok.status_code == 200, ok.text
    made = await h.client.post(
        "/v2/customer", json={"identifier": f"{MARKER}-body"}, headers=headers
    )
    assert made.status_code == 200, made.text
    missing = await h.client.get(
        f"/v2/account?login_secret={MARKER}",
        headers={**headers, "login-secret": MARKER, "X-Request-Id": "trace-404"},
    )
    assert missing.status_code in (401, 404), missing.text
    # a wrong secret names the app but proves nothing: nobody's call, not logged
    wrong = await h.client.get("/v2/app", headers={**headers, "service-secret": MARKER})
    assert wrong.status_code in (400, 401), wrong.text


async def test_calls_are_recorded_off_the_request_path_without_secrets(harness: Harness) -> None:
    h = harness
    await _calls(h)
    assert await _rows(h) == []  # nothing written on the request path
    assert len(h.hub.request_log) == 3
    assert await store.flush(h.hub.db, h.hub.request_log) == 3
    assert len(h.hub.request_log) == 0
    rows = await _rows(h)
    async with h.hub.db.transaction() as db:
        app = (
            await db.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
    assert [(r.method, r.route, r.status) for r in rows] == [
        ("GET", "/v2/app", 200),
        ("POST", "/v2/customer", 200),
        ("GET", "/v2/account", rows[2].status),
    ]
    assert {r.app_id for r in rows} == {app.id}
    assert rows[0].request_id == "trace-ok-1"
    assert rows[0].error_code is None
    assert rows[2].request_id == "trace-404"
    assert rows[2].error_code in ("LoginNotFound", "CredentialInvalid")
    assert all(r.key_id and r.key_id.startswith("key_") and r.via == "key" for r in rows)
    assert all(0 < r.latency_us < 60_000_000 for r in rows)
    assert all(r.at.tzinfo is not None for r in rows)
    for row in rows:
        for column in ApiRequest.__table__.columns:
            value = getattr(row, column.key)
            assert MARKER not in str(value), (column.key, value)
            assert h.creds["service_secret"] not in str(value)


async def test_the_page_searches_pages_newest_first_and_a_viewer_reads_it(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    await _calls(h)
    for n in range(PAGE_SIZE):
        answer = await h.client.get(
            "/v2/app", headers={**h.headers(), "X-Request-Id": f"trace-many-{n}"}
        )
        assert answer.status_code == 200
    await store.flush(h.hub.db, h.hub.request_log)
    v = visitors()
    await v.sign_in(await make_member(h, Role.VIEWER))
    base = f"/dashboard/apps/{h.creds['client_id']}/requests"
    first = await v.get(base)
    assert first.status_code == 200, first.text
    shown = ROW.findall(first.text)
    assert len(shown) == PAGE_SIZE
    assert shown[0] == f"trace-many-{PAGE_SIZE - 1}"  # newest first
    assert MARKER not in first.text
    older = _link(NEXT, first.text)
    assert older is not None
    second = await v.get(older)
    assert ROW.findall(second.text) == ["trace-404", ROW.findall(second.text)[1], "trace-ok-1"]
    assert 'rel="next"' not in second.text

    by_id = await v.get(f"{base}?request_id=trace-404")
    assert ROW.findall(by_id.text) == ["trace-404"]
    assert "LoginNotFound" in by_id.text or "CredentialInvalid" in by_id.text
    refused = await v.get(f"{base}?status=4xx")
    assert ROW.findall(refused.text) == ["trace-404"]
    exact = await v.get(f"{base}?status=200&route=customer")
    assert len(ROW.findall(exact.text)) == 1
    assert "POST /v2/customer" in exact.text
    code = (await _rows(h))[2].error_code
    assert code is not None
    by_code = await v.get(f"{base}?error_code={code}")
    assert ROW.findall(by_code.text) == ["trace-404"]
    nothing = await v.get(f"{base}?request_id=nope")
    assert ROW.findall(nothing.text) == []
    assert "No call matches." in nothing.text


async def test_the_log_pages_as_every_list_keeping_its_search(
    harness: Harness, visitors: Visitors
) -> None:
    """The shared pager: next and previous links that keep the search and the page size, the
    page size chosen, no count (the log can be large), and a forged or old-style link gives the
    first page and says so."""
    h = harness
    for n in range(30):  # answered calls between refused ones, which the search leaves out
        ok = await h.client.get("/v2/app", headers={**h.headers(), "X-Request-Id": f"ok-{n}"})
        assert ok.status_code == 200
        refused = await h.client.get(
            "/v2/account",
            headers={**h.headers(), "login-secret": "nope", "X-Request-Id": f"no-{n}"},
        )
        assert refused.status_code >= 400
    await store.flush(h.hub.db, h.hub.request_log)
    v = visitors()
    await v.sign_in(await make_member(h, Role.VIEWER))
    base = f"/dashboard/apps/{h.creds['client_id']}/requests"

    first = await v.get(base, params={"status": "2xx", "route": "/v2/app", "size": "25"})
    assert first.status_code == 200, first.text
    assert ROW.findall(first.text) == [f"ok-{n}" for n in range(29, 4, -1)]
    assert "25 calls shown, more follow." in first.text
    assert " shown of " not in first.text  # never counted
    assert '<option value="25" selected>' in first.text
    assert 'rel="prev"' not in first.text
    older = _link(NEXT, first.text)
    assert older is not None
    assert "status=2xx" in older
    assert "route=%2Fv2%2Fapp" in older
    assert "size=25" in older
    # the size form keeps the search too
    assert '<input type="hidden" name="status" value="2xx">' in first.text

    second = await v.get(older)
    assert ROW.findall(second.text) == [f"ok-{n}" for n in range(4, -1, -1)]
    assert _link(NEXT, second.text) is None
    assert "First page" in second.text
    newer = _link(PREVIOUS, second.text)
    assert newer is not None
    assert "status=2xx" in newer
    assert "size=25" in newer
    back = await v.get(newer)
    assert ROW.findall(back.text) == ROW.findall(first.text)

    # the default size, and one not offered, is 50 a page; the search alone keeps to it
    whole = await v.get(base, params={"status": "2xx", "size": "7"})
    assert ROW.findall(whole.text) == [f"ok-{n}" for n in range(29, -1, -1)]
    everything = await v.get(base)
    assert len(ROW.findall(everything.text)) == PAGE_SIZE
    assert ROW.findall(everything.text)[:2] == ["no-29", "ok-29"]

    # a forged cursor, or a link of the page's own paging before the shared pager (an id):
    # the first page of the same search, and the page says why
    for cursor in ({"after": "bm90IGEgY3Vyc29y"}, {"before": "12"}, {"after": "x" * 500}):
        broken = await v.get(base, params={"status": "2xx", "size": "25", **cursor})
        assert broken.status_code == 200, cursor
        assert paging.BROKEN in broken.text
        assert ROW.findall(broken.text) == ROW.findall(first.text), cursor


async def test_another_apps_calls_are_not_on_this_apps_page(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    other = await h.new_app("other")
    answer = await h.client.get(
        "/v2/app",
        headers={
            "client-id": other["client_id"],
            "service-secret": other["service_secret"],
            "X-Request-Id": "trace-other-app",
        },
    )
    assert answer.status_code == 200
    await _calls(h)
    await store.flush(h.hub.db, h.hub.request_log)
    v = visitors()
    await v.sign_in(await make_member(h, Role.OWNER))
    mine = await v.get(f"/dashboard/apps/{h.creds['client_id']}/requests")
    theirs = await v.get(f"/dashboard/apps/{other['client_id']}/requests")
    assert "trace-other-app" not in mine.text
    assert ROW.findall(theirs.text) == ["trace-other-app"]


async def test_old_calls_are_purged_and_an_erased_apps_calls_dropped(harness: Harness) -> None:
    h = harness
    await _calls(h)
    await store.flush(h.hub.db, h.hub.request_log)
    h.clock.advance(days=store.RETENTION_DAYS, seconds=1)
    answer = await h.client.get("/v2/app", headers={**h.headers(), "X-Request-Id": "trace-new"})
    assert answer.status_code == 200
    await store.flush(h.hub.db, h.hub.request_log)
    # the runner's housekeeping purges them, with BANKHUB_REQUEST_LOG_DAYS (14) as the window
    assert h.hub.settings.request_log_days == store.RETENTION_DAYS
    await Runner(h.hub).housekeeping.sweep()
    assert [r.request_id for r in await _rows(h)] == ["trace-new"]
    assert await store.purge(h.hub.db, h.clock(), days=store.RETENTION_DAYS) == 0

    # rows of an app erased between the call and the flush are dropped, the rest written
    other = await h.new_app("gone")
    await h.client.get(
        "/v2/app",
        headers={"client-id": other["client_id"], "service-secret": other["service_secret"]},
    )
    await h.client.get("/v2/app", headers={**h.headers(), "X-Request-Id": "trace-kept"})
    with tenancy.everything():
        async with h.hub.db.transaction() as db:
            await db.execute(delete(App).where(App.client_id == other["client_id"]))
    assert await store.flush(h.hub.db, h.hub.request_log) == 1
    assert [r.request_id for r in await _rows(h)] == ["trace-new", "trace-kept"]


async def test_a_failed_flush_keeps_its_rows_and_the_buffer_is_bounded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    await _calls(h)
    pending = len(h.hub.request_log)
    assert pending == 3

    async def failing(*_: object, **__: object) -> int:
        raise ConnectionError("the database is away")

    with monkeypatch.context() as patched:
        patched.setattr(store, "write", failing)
        with pytest.raises(ConnectionError):
            await store.flush(h.hub.db, h.hub.request_log)
    assert len(h.hub.request_log) == pending
    assert await store.flush(h.hub.db, h.hub.request_log) == pending

    bounded = RequestLog(limit=2)
    bounded.give_back([(1, h.clock(), "GET", "/v2/app", 200, 1, "a", None, None, "key")] * 3)
    assert len(bounded) == 2
    assert bounded.dropped == 1
