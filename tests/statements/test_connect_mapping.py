"""The connect page's upload step: a table no profile knows is offered for a column mapping,
and the columns the user chooses import it (over plain HTTP, as a browser without JavaScript)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from tests.api.connect_client import CALLBACK, ConnectDriver, create_customer, create_token
from tests.conftest import Harness

STATEMENT_SERVICE_ID = 11
DATA = Path(__file__).parent / "data" / "profiles"
RENAMED = (DATA / "lloyds.csv").read_bytes().replace(b"Debit Amount", b"Paid Out")


async def _upload(driver: ConnectDriver, data: bytes, name: str = "export.csv", **form: str) -> str:
    fields = {"csrf": driver.csrf(), **driver.form_step(), **form}
    response = await driver.h.client.post(
        "/v2/connect/upload",
        data=fields,
        files={"file": (name, data, "application/octet-stream")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    await driver.show()
    return await driver.settle()


async def test_an_unknown_layout_is_mapped_on_the_page_and_imported(harness: Harness) -> None:
    h = harness
    driver = ConnectDriver(h)
    customer = await create_customer(h, "mapping-user")
    await driver.open(await create_token(h, customer, STATEMENT_SERVICE_ID))
    page = await driver.agree()
    assert "Upload a statement file" in page
    assert "Which column holds what?" not in page

    page = html.unescape(await _upload(driver, RENAMED))
    assert "We do not know the layout of export.csv. Below, choose which column" in page
    # the parser's own words are the technical detail, marked as English
    assert re.search(r'<span lang="en">[^<]*the closest is .lloyds.', page)
    assert "Which column holds what?" in page
    assert '<option value="Paid Out">Paid Out</option>' in page

    # a column the file does not have is refused, with the form again
    wrong = {"map_date": "Nope", "map_currency": "GBP", "map_date_format": "%d/%m/%Y"}
    page = html.unescape(await _upload(driver, RENAMED, **wrong))
    assert "export.csv has no column “Nope”. Choose the columns again" in page
    assert 'id="notice-detail"' not in page  # a choice on the form: no parser detail
    page = html.unescape(
        await _upload(driver, RENAMED, map_date="Transaction Date", map_date_format="%d/%m/%Y")
    )
    assert "Enter the currency of the account, such as EUR" in page

    await _upload(
        driver,
        RENAMED,
        map_date="Transaction Date",
        map_debit="Paid Out",
        map_credit="Credit Amount",
        map_description="Transaction Description",
        map_date_format="%d/%m/%Y",
        map_decimal=".",
        map_currency="gbp",
    )
    callback = await driver.finish()
    assert callback.payload["status"] == "success", callback.payload
    listed = await h.client.get(
        "/v2/transaction", headers=h.headers(login_secret=callback.payload["secret"])
    )
    amounts = sorted(str(t["amount"]) for t in listed.json()["data"])
    assert amounts == sorted(["-38.20", "-23.45", "2150.00", "-7.80", "-850.00"])


#: files people choose by mistake, what the page tells them in Vietnamese (with what to do
#: next), and the start of the parser's technical detail shown under it (None: no detail)
REFUSED = [
    (b"", "trong.csv", "trong.csv trống. Quý khách vui lòng tải lại sao kê", "The file is empty"),
    (
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        "saoke.pdf",
        "saoke.pdf không thuộc định dạng sao kê mà chúng tôi đọc được",
        "the file (saoke.pdf) is not OFX/QFX",
    ),
    (
        b"!Type:Bank\nD01/02/2025\nT-10.00\n^\n",
        "money.qif",
        "money.qif không ghi loại tiền. Quý khách vui lòng nhập loại tiền",
        "a QIF file states no currency",
    ),
    (
        b"<?xml version='1.0'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'>",
        "camt.xml",
        "Không thể đọc camt.xml. Quý khách vui lòng tải lại tệp từ ngân hàng và chọn tệp mới. "
        "Nếu lỗi vẫn lặp lại, Quý khách vui lòng gửi chi tiết kỹ thuật bên dưới cho",
        "the camt XML is not well-formed",
    ),
]


async def test_a_refused_file_is_explained_in_the_users_language_with_the_detail_beside(
    harness: Harness,
) -> None:
    h = harness
    created = await h.client.post(
        "/v2/token",
        json={
            "customer_id": await create_customer(h, "upload-vi"),
            "service_id": STATEMENT_SERVICE_ID,
            "callback_url": CALLBACK,
            "locale": "vi",
        },
        headers=h.headers(),
    )
    assert created.status_code == 200, created.text
    driver = ConnectDriver(h)
    await driver.open(created.json()["data"]["connect_url"])
    await driver.agree()
    for data, name, said, detail in REFUSED:
        page = html.unescape(await _upload(driver, data, name))
        notice = re.search(r'<p class="notice" role="alert" id="notice">([^<]*)</p>', page)
        assert notice, page
        assert said in notice.group(1)
        shown = re.search(
            r'<p class="fine" id="notice-detail">Chi tiết kỹ thuật: <span lang="en">([^<]*)<',
            page,
        )
        if detail is None:
            assert shown is None
        else:
            assert shown, page
            assert shown.group(1).startswith(detail)
            assert 'aria-describedby="help-file notice notice-detail"' in page
    # a currency that is not three letters, given with the QIF file
    page = html.unescape(await _upload(driver, REFUSED[2][0], "money.qif", currency="euro"))
    assert "Quý khách vui lòng nhập mã tiền tệ gồm ba chữ cái, ví dụ EUR" in page
    assert 'id="notice-detail"' not in page
    # given, the same file is imported
    await _upload(driver, REFUSED[2][0], "money.qif", currency="eur")
    driver.progress = ("Đang tải tài khoản của Quý khách",)
    callback = await driver.finish()
    assert callback.payload["status"] == "success", callback.payload
