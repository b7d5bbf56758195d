"""The audit log page (filterable, not for viewers) and the API reference page."""

from __future__ import annotations

import html
import re
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


def _operation(text: str, anchor: str) -> str:
    """One operation's section of the API reference page."""
    start = text.index(f'<section class="operation" id="{anchor}">')
    return text[start : text.index("</section>", start)]


async def test_the_api_reference_shows_each_bodys_fields_and_an_example_call_and_answer(
    harness: Harness, visitors: Visitors
) -> None:
    v = visitors()
    await v.sign_in(await make_member(harness, Role.VIEWER))
    page = (await v.get("/dashboard/api")).text
    customer = html.unescape(_operation(page, "post--v2-customer"))
    assert re.search(
        r'<tr data-field="identifier"><td><code>identifier</code></td><td>string', customer
    )
    assert "<td>yes</td>" in customer
    assert re.search(r"curl -X POST 'https?://[^']+/v2/customer'", customer)
    assert "-H 'client-id: <client-id>'" in customer
    assert "-H 'service-secret: <service-secret>'" in customer
    assert '-d \'{"identifier":' in customer
    assert '"data": {' in customer  # the answer's example, from the envelope's schema
    assert '"version": "v2"' in customer
    assert "1 to 255 characters" in customer  # the field's bounds
    keys = _operation(page, "post--v2-keys")
    assert re.search(r'data-field="scope"><td><code>scope</code></td><td>Scope</td>', keys)
    assert "One of: " in keys
    assert "<code>read</code>" in keys
    token = _operation(page, "post--v2-token")
    assert re.search(r'data-field="locale">.*string or null', token)
    login = html.unescape(_operation(page, "get--v2-account"))
    assert "-H 'login-secret: <login-secret>'" in login
    transactions = html.unescape(_operation(page, "get--v2-transaction"))
    assert "from_date=<from_date>&to_date=<to_date>" in transactions
    statement = html.unescape(_operation(page, "post--v2-statement"))
    assert "-F 'file=@statement.ofx'" in statement
    # the description's `code` spans read as code, not as backticks
    raw = _operation(page, "post--v2-customer")
    assert "<code>CustomerExists</code>" in raw
    assert "`" not in raw.split("Example answer")[-1]
    # placeholders only: none of the app's real secrets is ever on the page
    for secret in (harness.creds["service_secret"], harness.creds["app_secret"]):
        assert secret not in page


async def test_the_oauth_endpoints_are_described_beside_the_api(
    harness: Harness, visitors: Visitors
) -> None:
    from bankhub.dashboard.read_routes import oauth_routes
    from bankhub.oauth.reference import OPERATIONS
    from tests.security.test_keys_and_scopes import create_app_for_inspection
    from tests.security.test_tenant_matrix import make_settings_for_inspection

    app = create_app_for_inspection(make_settings_for_inspection())
    served = {(method, path) for method, path, _ in oauth_routes(app)}
    assert served == set(OPERATIONS), "an OAuth route and its description parted"
    v = visitors()
    await v.sign_in(await make_member(harness, Role.VIEWER))
    page = (await v.get("/dashboard/api")).text
    token = html.unescape(_operation(page, "post--oauth-token"))
    assert "<code>POST /oauth/token</code>" in token
    assert re.search(r'data-field="grant_type".*<code>client_credentials</code>', token)
    assert "--data-urlencode 'grant_type=client_credentials'" in token
    assert '"token_type": "Bearer"' in token
    assert 'id="get--well-known-jwksjson"' in page
    assert 'id="get--well-known-oauth-authorization-server"' in page
    # the described form is the one the endpoint takes
    example = dict(
        OPERATIONS[("post", "/oauth/token")]["requestBody"]["content"][
            "application/x-www-form-urlencoded"
        ]["example"]
    )
    example.update(
        client_id=harness.creds["client_id"], client_secret=harness.creds["service_secret"]
    )
    answer = await harness.client.post("/oauth/token", data=example)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == set(
        OPERATIONS[("post", "/oauth/token")]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]["properties"]
    )


def test_the_references_prose_is_escaped_and_its_code_spans_set_as_code() -> None:
    from bankhub.dashboard.read_routes import prose

    shown = prose("The envelope (`error`, `message`); <b>bold</b> and `a<b` too")
    assert str(shown) == (
        "The envelope (<code>error</code>, <code>message</code>); &lt;b&gt;bold&lt;/b&gt; and "
        "<code>a&lt;b</code> too"
    )
