"""The connect page's upload step for a statement service, in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.e2e.test_connect_browser import (  # noqa: F401 - fixtures shared with that module
    APP_NAME,
    CallbackServer,
    Partner,
    assert_success,
    callback_server,
    notice,
    on_page,
    partner,
    wait_for_callback,
)

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
STATEMENT_SERVICE_ID = 11
CAMT = CORPUS / "camt" / "camt053.v2.multi.statement.xml"


def test_camt_upload_through_the_connect_page(
    page: Page,
    partner: Partner,  # noqa: F811 - the shared fixture
    callback_server: CallbackServer,  # noqa: F811 - the shared fixture
    tmp_path: Path,
) -> None:
    response = page.goto(partner.connect_url(STATEMENT_SERVICE_ID))
    assert response is not None
    assert response.status == 200
    assert "script-src 'none'" in response.headers["content-security-policy"]
    on_page(page, f"{APP_NAME} asks to read your bank data")
    page.get_by_role("button", name="I agree, continue").click()
    on_page(page, "Upload a statement file")
    assert page.locator("form[enctype='multipart/form-data'] input[name=csrf]").count() == 1
    assert page.locator("script").count() == 0

    # A broken file: what to do in the user's words, the parser's message as the technical
    # detail (read with the field), and the form again.
    broken = tmp_path / "broken.xml"
    broken.write_bytes(CAMT.read_bytes()[:700])
    page.get_by_label("Statement file").set_input_files(str(broken))
    page.get_by_role("button", name="Import").click()
    assert "broken.xml could not be read. Download it from your bank again" in notice(page)
    detail = page.locator("#notice-detail [lang=en]")
    assert "the camt XML is not well-formed" in detail.inner_text()
    described = page.get_by_label("Statement file").get_attribute("aria-describedby") or ""
    assert "notice-detail" in described.split()
    on_page(page, "Upload a statement file")

    page.get_by_label("Statement file").set_input_files(str(CAMT))
    page.get_by_role("button", name="Import").click()
    payload = wait_for_callback(page, callback_server)
    login_id, secret = assert_success(payload)
    assert urlsplit(page.url).path.startswith("/v2/")

    rows = partner.get("/v2/transaction", secret)
    assert len(rows) == 2
    assert sorted(row["currency"] for row in rows) == ["EUR", "EUR"]
    accounts = partner.get("/v2/account", secret)
    assert [a["balance"] for a in accounts] == ["20.00"]
    assert all(a["login_id"] == login_id for a in accounts)
    expect(page.get_by_text("Back in the app.")).to_be_visible()
