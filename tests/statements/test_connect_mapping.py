"""The connect page's upload step: a table no profile knows is offered for a column mapping,
and the columns the user chooses import it (over plain HTTP, as a browser without JavaScript)."""

from __future__ import annotations

import html
from pathlib import Path

from tests.api.connect_client import ConnectDriver, create_customer, create_token
from tests.conftest import Harness

STATEMENT_SERVICE_ID = 11
DATA = Path(__file__).parent / "data" / "profiles"
RENAMED = (DATA / "lloyds.csv").read_bytes().replace(b"Debit Amount", b"Paid Out")


async def _upload(driver: ConnectDriver, data: bytes, **form: str) -> str:
    fields = {"csrf": driver.csrf(), **driver.form_step(), **form}
    response = await driver.h.client.post(
        "/v2/connect/upload",
        data=fields,
        files={"file": ("export.csv", data, "text/csv")},
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
    assert "the closest is 'lloyds'" in page
    assert "Which column holds what?" in page
    assert '<option value="Paid Out">Paid Out</option>' in page

    # a column the file does not have is refused, with the form again
    wrong = {"map_date": "Nope", "map_currency": "GBP", "map_date_format": "%d/%m/%Y"}
    page = html.unescape(await _upload(driver, RENAMED, **wrong))
    assert "The file has no column 'Nope'" in page
    page = html.unescape(
        await _upload(driver, RENAMED, map_date="Transaction Date", map_date_format="%d/%m/%Y")
    )
    assert "Please give the currency" in page

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
