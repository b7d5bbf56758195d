"""Paging of the dashboard's lists (``bankhub.dashboard.paging``): Consent Control past 200
customers, the delivery log past 50 events, the audit log both ways, the team; next, previous,
first, the page size, the count, and a broken link."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from bankhub.audit import services as audit
from bankhub.customers.models import Customer
from bankhub.dashboard import paging
from bankhub.dashboard.models import Member
from bankhub.dashboard.roles import Role
from bankhub.db import tenancy
from bankhub.events.models import Event
from bankhub.partners.models import App
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
PREVIOUS = re.compile(r'<a rel="prev" href="([^"]+)"')


def _link(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1).replace("&amp;", "&") if found else None


async def _app_id(h: Harness) -> int:
    async with h.hub.db.transaction() as db:
        query = select(App.id).where(App.client_id == h.creds["client_id"])
        return int((await db.execute(query)).scalar_one())


async def _owner(h: Harness, visitors: Visitors) -> Visitor:
    v = visitors()
    await v.sign_in(await make_member(h, Role.OWNER))
    return v


async def _walk(v: Visitor, path: str, attribute: str) -> tuple[list[list[str]], list[str]]:
    """Every page from ``path`` on by its next links: the ids on each, and the pages' text."""
    pages: list[list[str]] = []
    texts: list[str] = []
    where: str | None = path
    while where is not None:
        answer = await v.get(where)
        assert answer.status_code == 200, answer.text[:500]
        pages.append(re.findall(rf'{attribute}="([^"]+)"', answer.text))
        texts.append(answer.text)
        where = _link(NEXT, answer.text)
        assert len(pages) < 50, "the pages never end"
    return pages, texts


async def test_consent_control_pages_past_200_customers(
    harness: Harness, visitors: Visitors
) -> None:
    """All made in the same instant: the id orders them, none is shown twice or left out."""
    h = harness
    app_id = await _app_id(h)
    made = []
    with tenancy.everything():
        async with h.hub.db.transaction() as db:
            for n in range(231):
                customer = Customer(
                    id=str(uuid.uuid4()),
                    app_id=app_id,
                    identifier=f"cust-{n:03}",
                    created_at=h.clock(),
                )
                db.add(customer)
                made.append(customer.id)
    v = await _owner(h, visitors)
    path = f"/dashboard/apps/{h.creds['client_id']}/customers"
    pages, texts = await _walk(v, path, "data-customer")
    assert [len(p) for p in pages] == [50, 50, 50, 50, 31]
    seen = [c for page in pages for c in page]
    assert sorted(seen) == sorted(made)
    assert "50 shown of 231 customers" in texts[0]
    assert 'rel="prev"' not in texts[0]
    # back from the second page: exactly the first
    back = _link(PREVIOUS, texts[1])
    assert back is not None
    again = await v.get(back)
    assert re.findall(r'data-customer="([^"]+)"', again.text) == pages[0]
    # a bigger page, the search kept in the links
    big = await v.get(path, params={"size": "200"})
    assert len(re.findall(r'data-customer="', big.text)) == 200
    rest_link = _link(NEXT, big.text)
    assert rest_link is not None
    assert "size=200" in rest_link
    rest = await v.get(rest_link)
    assert len(re.findall(r'data-customer="', rest.text)) == 31
    found = await v.get(path, params={"q": "cust-1", "size": "25"})
    assert "25 shown of 100 customers" in found.text
    following = _link(NEXT, found.text)
    assert following is not None
    assert "q=cust-1" in following
    # a broken or forged cursor: the first page, said so
    broken = await v.get(path, params={"after": "not-a-cursor"})
    assert broken.status_code == 200
    assert paging.BROKEN in broken.text
    assert re.findall(r'data-customer="([^"]+)"', broken.text) == pages[0]


async def test_the_delivery_log_pages_past_50_events(harness: Harness, visitors: Visitors) -> None:
    h = harness
    app_id = await _app_id(h)
    with tenancy.everything():
        async with h.hub.db.transaction() as db:
            for n in range(57):
                db.add(
                    Event(
                        app_id=app_id,
                        type="login.updated",
                        payload={"n": n},
                        created_at=h.clock() + timedelta(seconds=n),
                    )
                )
    v = await _owner(h, visitors)
    pages, texts = await _walk(v, f"/dashboard/apps/{h.creds['client_id']}/webhooks", "data-event")
    assert [len(p) for p in pages] == [25, 25, 7]  # the delivery log shows 25 events a page
    ids = [int(i) for page in pages for i in page]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert len(set(ids)) == 57
    assert "25 shown of 57 events" in texts[0]


async def test_the_audit_log_pages_both_ways_with_its_filters(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    async with h.hub.db.transaction() as db:
        for n in range(130):
            audit.record(
                db,
                now=h.clock(),
                actor="operator:cli",
                action="test.paged",
                target_type="thing",
                target_id=n,
            )
    v = await _owner(h, visitors)
    path = "/dashboard/audit?action=test.paged&size=50"
    pages, texts = await _walk(v, path, "data-target")
    assert [len(p) for p in pages] == [50, 50, 30]
    assert [int(t.split()[-1]) for p in pages for t in p] == list(range(129, -1, -1))
    assert "more follow" in texts[0]
    assert "more follow" not in texts[2]
    back = _link(PREVIOUS, texts[2])
    assert back is not None
    assert "action=test.paged" in back
    again = await v.get(back)
    assert re.findall(r'data-target="([^"]+)"', again.text) == pages[1]


async def test_the_team_pages(harness: Harness, visitors: Visitors) -> None:
    h = harness
    v = await _owner(h, visitors)
    async with h.hub.db.transaction() as db:
        for n in range(30):
            db.add(
                Member(
                    email=f"m{n:02}@example.com",
                    password_hash="-",
                    role=Role.VIEWER.value,
                    recovery_hashes=[],
                    failed_count=0,
                    created_at=h.clock(),
                )
            )
    pages, texts = await _walk(v, "/dashboard/team?size=25", "data-email")
    assert [len(p) for p in pages] == [25, 6]
    assert "25 shown of 31 members" in texts[0]
    assert pages[0][0] == "owner@example.com"  # the order they joined in


def test_a_cursor_is_only_ever_ours() -> None:
    keys = paging.Keyset((paging.Key(Member.id, "int"),))
    assert keys.decode(keys.encode((42,))) == (42,)
    for junk in ("", "x", "WyIxIiwiMiJd", "W10", "eyJhIjoxfQ", "WyJhYmMiXQ", "é", "A" * 500):
        with pytest.raises(paging.BadCursor):
            keys.decode(junk)
    window = paging.window_of({"size": "7", "after": "abc", "before": "def"}, default=50)
    assert (window.size, window.after, window.before) == (50, "abc", "")
