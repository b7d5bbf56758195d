"""SVG charts: valid XML, escaped labels, marks where the data says, deterministic, "no data"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element  # nosec B405 - only the type; parsing is defusedxml

import pytest
from defusedxml import ElementTree

from bankhub.usage import charts
from bankhub.usage.series import API_LABELS, Bucket, BucketSize, Series

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 20, 6, tzinfo=UTC)


def make_series(
    rows: list[dict[str, int]],
    *,
    keys: tuple[str, ...] = ("2xx", "3xx", "4xx", "5xx"),
    labels: dict[str, str] | None = None,
    bucket: BucketSize = "hour",
    title: str = "API calls",
) -> Series:
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    buckets = [
        Bucket(START + i * step, {k: row.get(k, 0) for k in keys}) for i, row in enumerate(rows)
    ]
    return Series(
        name="api_calls",
        title=title,
        keys=keys,
        bucket=bucket,
        start=START,
        end=START + len(rows) * step,
        buckets=buckets,
        labels=API_LABELS if labels is None else labels,
    )


def parse(svg: str) -> Element:
    root: Element = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def series_group(root: Element, key: str) -> Element:
    for group in root.iter(f"{SVG}g"):
        if group.get("data-key") == key and "series" in (group.get("class") or "").split():
            return group
    raise AssertionError(f"no series group for {key}")


def test_svg_is_valid_scalable_and_accessible() -> None:
    chart = charts.render(make_series([{"2xx": 5, "4xx": 1}, {"2xx": 2}]), chart_id="calls")
    root = parse(chart.svg)
    assert root.get("viewBox") == "0 0 360 220"
    assert root.get("width") == "100%"
    assert root.get("height") is None
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "calls-title calls-desc"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None
    assert title.get("id") == "calls-title"
    assert title.text == "API calls"
    assert desc is not None
    assert desc.get("id") == "calls-desc"
    assert "2xx success: 7" in (desc.text or "")
    assert "UTC" in (desc.text or "")
    assert not chart.empty


def test_nothing_a_strict_csp_blocks() -> None:
    chart = charts.render(make_series([{"2xx": 5, "5xx": 3}] * 3), kind="lines")
    root = parse(chart.svg)
    for element in root.iter():
        assert "style" not in element.attrib
        assert not any(name.lower().startswith("on") for name in element.attrib)
        assert element.tag not in (f"{SVG}script", f"{SVG}style", f"{SVG}foreignObject")
        for value in element.attrib.values():
            assert "javascript:" not in value.lower()
    assert "<script" not in chart.svg
    assert "style=" not in chart.svg


def test_hostile_labels_are_escaped_everywhere() -> None:
    hostile = "</text><script>alert(\"x\")</script><text a='b'>&amp;\x01"
    series = make_series(
        [{"<k>": 3, "b": 1}],
        keys=("<k>", "b"),
        labels={"<k>": hostile, "b": "Bank & Co"},
        title="Calls of <Evil> & co",
    )
    chart = charts.render(series, chart_id='x" onload="alert(1)')
    root = parse(chart.svg)  # still well-formed XML
    assert not [e for e in root.iter() if e.tag == f"{SVG}script"]
    assert "<script" not in chart.svg
    assert "&lt;/text&gt;&lt;script&gt;" in chart.svg
    assert "&amp;amp;" in chart.svg  # an escaped entity stays text
    assert "\x01" not in chart.svg
    texts = ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]
    assert any(t.startswith('</text><script>alert("x")</script>') for t in texts)
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == "Calls of <Evil> & co"
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", i or "") for i in ids)
    assert not any(name.startswith("on") for e in root.iter() for name in e.attrib)
    # the HTML table escapes too
    table = chart.table.html()
    assert "<script" not in table
    assert "&lt;script&gt;" in table
    assert chart.table.columns[1] == hostile  # plain text: the page's template escapes it


def bar_geometry(root: Element, key: str) -> list[tuple[float, float, float, float]]:
    return [
        (
            float(r.get("x", "0")),
            float(r.get("y", "0")),
            float(r.get("width", "0")),
            float(r.get("height", "0")),
        )
        for r in series_group(root, key).iter(f"{SVG}rect")
    ]


def test_bars_stand_where_the_data_says() -> None:
    rows = [{"2xx": 4, "4xx": 2}, {}, {"2xx": 8}, {"5xx": 1}]
    root = parse(charts.render(make_series(rows)).svg)
    ok, client, server = (bar_geometry(root, k) for k in ("2xx", "4xx", "5xx"))
    assert len(ok) == 2
    assert len(client) == 1
    assert len(server) == 1
    assert bar_geometry(root, "3xx") == []
    # heights are proportional to the counts (the axis tops out at 8)
    unit = ok[1][3] / 8
    assert ok[0][3] == pytest.approx(4 * unit, abs=0.1)
    assert client[0][3] == pytest.approx(2 * unit, abs=0.1)
    assert server[0][3] == pytest.approx(1 * unit, abs=0.1)
    # stacked: the 4xx part sits right on top of the 2xx part of the same bucket
    assert client[0][0] == ok[0][0]
    assert client[0][1] + client[0][3] == pytest.approx(ok[0][1], abs=0.1)
    # one slot per bucket, left to right, all bars resting on the same baseline
    slot = (ok[1][0] - ok[0][0]) / 2  # buckets 0 and 2
    assert slot > ok[0][2] > 0
    assert server[0][0] == pytest.approx(ok[0][0] + 3 * slot, abs=0.2)
    assert ok[0][1] + ok[0][3] == pytest.approx(ok[1][1] + ok[1][3], abs=0.1)
    assert ok[0][1] + ok[0][3] == pytest.approx(server[0][1] + server[0][3], abs=0.1)
    # each bar says what it is
    titles = [t.text for t in series_group(root, "2xx").iter(f"{SVG}title")]
    assert titles == [
        "2xx success, 2026-11-20 06:00 UTC: 4",
        "2xx success, 2026-11-20 08:00 UTC: 8",
    ]


def test_lines_pass_through_every_point() -> None:
    rows = [{"2xx": 0}, {"2xx": 10}, {"2xx": 5}]
    root = parse(charts.render(make_series(rows), kind="lines").svg)
    line = series_group(root, "2xx").find(f"{SVG}polyline")
    assert line is not None
    points = [tuple(map(float, p.split(","))) for p in (line.get("points") or "").split()]
    assert len(points) == 3
    (x0, y0), (x1, y1), (x2, y2) = points
    assert x0 < x1 < x2
    assert x1 - x0 == pytest.approx(x2 - x1, abs=0.1)
    baseline = y0  # zero sits on the axis
    assert baseline - y2 == pytest.approx((baseline - y1) / 2, abs=0.1)
    axis = root.find(f"{SVG}g[@class='axis']")
    assert axis is not None
    assert float(axis[0].get("y1", "0")) == pytest.approx(baseline)
    dots = list(series_group(root, "2xx").iter(f"{SVG}circle"))
    assert [(float(d.get("cx", "0")), float(d.get("cy", "0"))) for d in dots] == points


def test_axis_labels_are_readable_utc_times() -> None:
    rows = [{"2xx": 1}] * 48
    root = parse(charts.render(make_series(rows)).svg)
    labels = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "UTC" in labels
    assert "12:00" in labels
    assert "00:00" in labels
    assert "21 Nov" in labels  # the date under the first label of a new day
    days = parse(charts.render(make_series([{"2xx": 1}] * 30, bucket="day")).svg)
    day_labels = ["".join(t.itertext()) for t in days.iter(f"{SVG}text")]
    assert "2026" in day_labels
    assert any(re.fullmatch(r"\d{1,2} (Nov|Dec)", t) for t in day_labels)


def test_legend_names_every_key_with_its_total() -> None:
    root = parse(charts.render(make_series([{"2xx": 1200, "4xx": 3}])).svg)
    legend = root.find(f"{SVG}g[@class='legend']")
    assert legend is not None
    texts = ["".join(t.itertext()) for t in legend.iter(f"{SVG}text")]
    assert texts == [
        "2xx success (1,200)",
        "3xx redirect (0)",
        "4xx client error (3)",
        "5xx server error (0)",
    ]


def test_table_is_the_same_numbers() -> None:
    chart = charts.render(make_series([{"2xx": 1234, "4xx": 2}, {"5xx": 1}]))
    assert chart.table.caption == "API calls, per hour (UTC)"
    assert chart.table.columns == [
        "Hour (UTC)",
        "2xx success",
        "3xx redirect",
        "4xx client error",
        "5xx server error",
        "Total",
    ]
    assert chart.table.rows == [
        ["2026-11-20 06:00", "1,234", "0", "2", "0", "1,236"],
        ["2026-11-20 07:00", "0", "0", "0", "1", "1"],
    ]
    table = ElementTree.fromstring(chart.table.html())
    assert [th.text for th in table.iter("th")][:2] == ["Hour (UTC)", "2xx success"]


def test_output_is_deterministic() -> None:
    rows = [{"2xx": i * 7 % 13, "4xx": i % 3} for i in range(100)]
    first = charts.render(make_series(rows), kind="lines")
    again = charts.render(make_series([dict(r) for r in rows]), kind="lines")
    assert first.svg == again.svg
    assert first.table == again.table
    assert charts.render(make_series(rows)).svg == charts.render(make_series(rows)).svg


@pytest.mark.parametrize("rows", [[], [{}] * 24])
def test_no_data_says_so(rows: list[dict[str, int]]) -> None:
    chart = charts.render(make_series(rows), chart_id="none")
    root = parse(chart.svg)
    assert chart.empty
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert charts.NO_DATA in texts
    assert not list(root.iter(f"{SVG}rect"))
    assert not list(root.iter(f"{SVG}polyline"))
    desc = root.find(f"{SVG}desc")
    assert desc is not None
    assert (desc.text or "").startswith(charts.NO_DATA)
    assert len(chart.table.rows) == len(rows)


def test_many_buckets_stay_valid() -> None:
    rows = [{"2xx": i % 50, "5xx": i % 7} for i in range(24 * 31)]
    chart = charts.render(make_series(rows))
    root = parse(chart.svg)
    rects = bar_geometry(root, "2xx")
    assert all(w > 0 and h >= 0 for _, _, w, h in rects)
    labels = [t for t in root.iter(f"{SVG}text") if t.get("y") and "x" in t.attrib]
    assert len(labels) < 40  # labelled sparsely, not once per hour


def test_bad_arguments_are_refused() -> None:
    series = make_series([{"2xx": 1}])
    with pytest.raises(ValueError, match="kind"):
        charts.render(series, kind="pie")  # type: ignore[arg-type]  # wrong on purpose
    with pytest.raises(ValueError, match="colour"):
        charts.render(series, colors={"2xx": 'red" onclick="x'})
    with pytest.raises(ValueError, match="viewBox"):
        charts.render(series, width=50)
    assert 'fill="#123456"' in charts.render(series, colors={"2xx": "#123456"}).svg


def test_stylesheet_exists_and_is_static() -> None:
    css = charts.STYLESHEET.read_text()
    assert ".bankhub-chart" in css
    assert "url(" not in css
    assert "expression(" not in css
