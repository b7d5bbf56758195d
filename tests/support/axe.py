"""axe-core in the browser tests: the page's accessibility checked as a screen reader user's
tools would (WCAG 2.x A and AA rules, and axe's best practices).

``scripts/bootstrap --browser`` fetches axe-core from npm at a pinned version and checks the
tarball against its pinned integrity (sha512) before keeping ``axe.min.js`` under ``.cache``
(MPL-2.0, its LICENSE beside it); nothing of it is committed. The script is evaluated in the
page through the DevTools protocol, so the page's own CSP (``script-src 'none'``) stays as
served.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

AXE_VERSION = "4.10.3"
AXE_JS = Path(__file__).resolve().parents[2] / ".cache" / f"axe-core-{AXE_VERSION}" / "axe.min.js"
#: what counts as failing: axe's two highest impacts
FAILING = ("serious", "critical")


def _source() -> str:
    if not AXE_JS.is_file():
        reason = f"axe-core missing at {AXE_JS}: run scripts/bootstrap --browser"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return AXE_JS.read_text("utf-8")


def violations(page: Page) -> list[dict[str, Any]]:
    """axe's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_source())
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                 "wcag22aa", "best-practice"]},
                resultTypes: ["violations"],
            });
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in FAILING]


def assert_accessible(page: Page, where: str) -> None:
    found = violations(page)
    assert not found, f"axe on {where} ({page.url}):\n" + "\n".join(
        f"  {v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in found
    )
