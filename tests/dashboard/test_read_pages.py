"""The audit log page (filterable, not for viewers) and the API reference page."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bankhub.dashboard.roles import Role
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]


async def test_the_audit_log_lists_and_filters(harness: Harness, visitors: Visitors) -> None:
    owner = await make_member(harness, Role.OWNER)
    v = visitors()
    await v.sign_in(owner)
    client_id = harness.creds["client_id"]
    await v.get(f"/dashboard/apps/{client_id}")
    await v.post(f"/dashboard/apps/{client_id}/retention", {"hours": "72"})
    everything = await v.get("/dashboard/audit")
    assert everything.status_code == 200
    assert 'data-action="member.signed_in"' in everything.text
    assert 'data-action="app.retention_changed"' in everything.text
    only = await v.get("/dashboard/audit", params={"action": "app.retention_changed"})
    assert 'data-action="app.retention_changed"' in only.text
    assert 'data-action="member.signed_in"' not in only.text
    by_app = await v.get("/dashboard/audit", params={"app": client_id})
    assert 'data-action="app.retention_changed"' in by_app.text
    assert 'data-action="member.signed_in"' not in by_app.text
    nobody = await v.get("/dashboard/audit", params={"actor": "member:nobody"})
    assert "Nothing matches." in nobody.text
    later = await v.get("/dashboard/audit", params={"from": "2030-01-01"})
    assert "Nothing matches." in later.text
    same_day = await v.get(
        "/dashboard/audit", params={"from": "2026-11-20", "to": "2026-11-20", "actor": "owner@"}
    )
    assert 'data-action="member.signed_in"' in same_day.text
    # who acted, in the team's words: the member's address, not the stored "member:" form
    assert f'<td data-label="Who">{owner.email}</td>' in same_day.text
    assert "member:" not in same_day.text
    junk = await v.get("/dashboard/audit", params={"from": "yesterday", "before": "x"})
    assert junk.status_code == 200


async def test_viewers_do_not_read_the_audit_log(harness: Harness, visitors: Visitors) -> None:
    v = visitors()
    await v.sign_in(await make_member(harness, Role.VIEWER))
    assert (await v.get("/dashboard/audit")).status_code == 403
    home = await v.get("/dashboard")
    assert 'href="/dashboard/audit"' not in home.text


async def test_the_api_reference_is_for_signed_in_members(
    harness: Harness, visitors: Visitors
) -> None:
    anonymous = await visitors().get("/dashboard/api")
    assert anonymous.status_code == 303
    v = visitors()
    await v.sign_in(await make_member(harness, Role.VIEWER))
    page = await v.get("/dashboard/api")
    assert page.status_code == 200
    assert "<code>POST /v2/customer</code>" in page.text
    assert "/dashboard" not in page.text.split("<h1>API reference</h1>", 1)[1].split("Models")[0]


@pytest.mark.parametrize("harness", [{"docs": "off"}], indirect=True)
async def test_the_api_reference_says_when_docs_are_off(
    harness: Harness, visitors: Visitors
) -> None:
    v = visitors()
    await v.sign_in(await make_member(harness, Role.VIEWER))
    page = await v.get("/dashboard/api")
    assert page.status_code == 200
    assert "switched off" in page.text
