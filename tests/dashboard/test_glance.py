"""At a glance: the overview draws the usage series as SVG, each chart with its data table,
for the chosen period and app; another app's activity stays out of one app's charts."""

from __future__ import annotations

import re
from collections.abc import Callable

from defusedxml import ElementTree

from bankhub.dashboard.roles import Role
from bankhub.usage import store
from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
SVG = re.compile(r'<section class="chart" id="([a-z]+)".*?(<svg .*?</svg>)', re.S)


def _table(html: str, chart_id: str) -> list[list[str]]:
    """The data table of one chart: its rows as cells of text."""
    section = html.split(f'<section class="chart" id="{chart_id}"', 1)[1].split("</section>", 1)[0]
    body = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def _totals(rows: list[list[str]]) -> int:
    return sum(int(row[-1].replace(",", "")) for row in rows)


async def test_the_overview_charts_the_usage_of_every_app_or_one(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    await connect(h, "user_good")  # a connect, transactions, API calls
    other = await h.new_app("Quiet app")
    await store.flush(h.hub.db, h.hub.usage)
    v = visitors()
    await v.sign_in(await make_member(h, Role.VIEWER))

    page = await v.get("/dashboard")
    assert page.status_code == 200
    charts = dict(SVG.findall(page.text))
    assert sorted(charts) == ["calls", "connects", "logins", "transactions", "webhooks"]
    for svg in charts.values():
        root = ElementTree.fromstring(svg)  # well-formed, no entities
        assert root.get("role") == "img"
    assert 'style="' not in page.text
    assert "<style" not in page.text

    connects = _table(page.text, "connects")
    assert len(connects) == 24  # one row an hour
    assert _totals(connects) == 1
    assert _totals(_table(page.text, "transactions")) > 100
    assert _totals(_table(page.text, "calls")) >= 3
    assert 'id="logins-now">1<' in page.text

    week = await v.get("/dashboard", params={"period": "7d"})
    assert len(_table(week.text, "connects")) == 7  # one row a day
    assert _totals(_table(week.text, "connects")) == 1
    month = await v.get("/dashboard", params={"period": "30d"})
    assert len(_table(month.text, "calls")) == 30

    quiet = await v.get("/dashboard", params={"app": other["client_id"]})
    assert "Quiet app;" in quiet.text
    assert _totals(_table(quiet.text, "connects")) == 0
    assert _totals(_table(quiet.text, "transactions")) == 0
    assert "No data for this period" in quiet.text
    assert 'id="logins-now">0<' in quiet.text

    odd = await v.get("/dashboard", params={"period": "1y", "app": "<script>"})
    assert odd.status_code == 200  # unknown choices fall back to 24 hours and every app
    assert "all apps;" in odd.text
    assert "<script>" not in odd.text

    css = await v.get("/dashboard/static/charts.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
