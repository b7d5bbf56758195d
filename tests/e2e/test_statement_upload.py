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
    fits_phone,
    notice,
    on_page,
    partner,
    shot,
    wait_for_callback,
)
from tests.support.axe import assert_accessible
from tests.support.browser_plugin import MakePage

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


def test_a_refused_file_is_explained_in_vietnamese_on_a_desk_and_a_phone(
    make_page: MakePage,
    partner: Partner,  # noqa: F811 - the shared fixture
    tmp_path: Path,
) -> None:
    """What to do next in the user's language, the parser's words beside it as the technical
    detail (marked English, read with the field), on both screens, with no serious axe finding."""
    pdf = tmp_path / "saoke.pdf"
    pdf.write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    for phone in (False, True):
        page = make_page(phone=phone)
        page.goto(partner.connect_url(STATEMENT_SERVICE_ID, locale="vi"))
        page.get_by_role("button", name="Tôi đồng ý, tiếp tục").click()
        page.get_by_label("Tệp sao kê").set_input_files(str(pdf))
        page.get_by_role("button", name="Nhập dữ liệu").click()
        expect(page.get_by_role("alert")).to_contain_text(
            "saoke.pdf không thuộc định dạng sao kê mà chúng tôi đọc được"
        )
        detail = page.locator("#notice-detail")
        expect(detail).to_contain_text("Chi tiết kỹ thuật:")
        expect(detail.locator("[lang=en]")).to_contain_text("is not OFX/QFX")
        described = page.get_by_label("Tệp sao kê").get_attribute("aria-describedby") or ""
        assert described.split() == ["help-file", "notice", "notice-detail"]
        view = "phone" if phone else "desktop"
        shot(page, f"upload-refused-vi-{view}")
        assert_accessible(page, f"a refused upload in vi on {view}")
        if phone:
            fits_phone(page)
