"""Payments exported as ISO 20022 pain.001 files (``POST /v2/payment[/batch]/{id}/pain.001``), on
both databases: each file is validated against ISO 20022's schema from a source other than the
generator and read back with an independent parser, and must equal what is stored; the export
moves the payment to ``exported``, after which nothing sends, cancels or expires it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text

from bankhub.accounts.models import Account
from bankhub.audit.models import AuditEntry
from bankhub.db import tenancy
from bankhub.payments import export, pain001, services
from bankhub.payments.models import SINGLE, Payment
from bankhub.payments.sending import PaymentAuthorisation
from bankhub.payments.validation import next_target2_day
from tests.api.connect_client import CALLBACK, PaymentDriver, connect, create_customer
from tests.api.test_payments import (
    CREDITOR_IBAN,
    SPARBANK,
    app_id,
    authorise,
    initiate,
    key,
    status_events,
    sweep,
    switch_on,
)
from tests.conftest import Harness
from tests.security.test_audit import PAYMENT_FILES
from tests.statements.uploads import upload
from tests.support import iso20022


async def linked_account(h: Harness, customer: str) -> dict[str, Any]:
    """The customer's current account at the sandbox bank (its IBAN and holder)."""
    login = await connect(h, "user_good", SPARBANK, customer)
    accounts = (
        await h.client.get("/v2/account", headers=h.headers(login_secret=login["secret"]))
    ).json()["data"]
    current: dict[str, Any] = accounts[0]
    async with h.hub.db.transaction() as session:
        row = await session.get(Account, current["id"])
        assert row is not None
        opened = h.hub.engine.account_details(row)
    return {**current, "iban": opened["iban"], "holder_name": opened["holder_name"]}


async def create_batch(
    h: Harness, customer: str, transfers: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    response = await h.client.post(
        "/v2/payment/batch",
        json={
            "customer_id": customer,
            "service_id": SPARBANK,
            "callback_url": CALLBACK,
            "payments": transfers,
            **fields,
        },
        headers={**h.headers(), **key()},
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def execution_day(h: Harness) -> str:
    return next_target2_day(h.clock().date() + timedelta(days=3)).isoformat()


async def test_a_batch_exports_as_a_valid_file_that_reads_back_as_stored(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h)
    day = execution_day(h)
    batch = await create_batch(
        h,
        customer,
        [
            {
                "creditor_name": "Jürgen Müller-Lüdenscheidt",
                "creditor_iban": "DE89 3704 0044 0532 0130 00",
                "amount": "1250.5",
                "currency": "EUR",
                "remittance_information": "Rechnung Nr. 2026/114 Straße",
            },
            {
                "creditor_name": "Société Générale Œuvres",
                "creditor_iban": "FR1420041010050500013M02606",
                "creditor_bic": "SOGEFRPP",
                "amount": "0.01",
                "currency": "EUR",
            },
            {
                "creditor_name": "Ørsted Æble",
                "creditor_iban": CREDITOR_IBAN,
                "amount": "99.99",
                "currency": "EUR",
                "remittance_information": "Ref: A-1 (x) +y ?z",
            },
        ],
        account_id=account["id"],
        execution_date=day,
        total="1350.50",
    )
    stored = (await h.client.get(f"/v2/payment/batch/{batch['id']}", headers=h.headers())).json()[
        "data"
    ]
    for version in (pain001.V03, pain001.V09):
        response = await h.client.post(
            f"/v2/payment/batch/{batch['id']}/pain.001",
            params={"version": version},
            headers=h.headers(),
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        assert response.headers["content-disposition"] == (
            f'attachment; filename="bankhub-{batch["id"]}.{version}.xml"'
        )
        assert response.content.isascii()  # names and remittance were transliterated when stored
        decoded = iso20022.read(response.content, version)
        header = decoded["CstmrCdtTrfInitn"]["GrpHdr"]
        assert header["MsgId"] == batch["id"].replace("-", "")
        assert header["NbOfTxs"] == "3"
        assert header["CtrlSum"] == Decimal(stored["total"]) == Decimal("1350.50")
        [info] = decoded["CstmrCdtTrfInitn"]["PmtInf"]
        assert info["NbOfTxs"] == "3"
        assert info["CtrlSum"] == Decimal("1350.50")
        assert info["DbtrAcct"]["Id"]["IBAN"] == account["iban"]
        assert info["Dbtr"]["Nm"] == account["holder_name"]
        read = iso20022.transfers(decoded)
        assert [
            {
                "end_to_end_id": tx["PmtId"]["EndToEndId"],
                "creditor_name": tx["Cdtr"]["Nm"],
                "creditor_iban": tx["CdtrAcct"]["Id"]["IBAN"],
                "amount": str(tx["Amt"]["InstdAmt"]["$"]),
                "currency": tx["Amt"]["InstdAmt"]["@Ccy"],
                "remittance_information": (tx.get("RmtInf") or {}).get("Ustrd", [None])[0],
                "date": tx["_date"],
            }
            for tx in read
        ] == [
            {
                "end_to_end_id": p["end_to_end_id"],
                "creditor_name": p["creditor_name"],
                "creditor_iban": p["creditor_iban"],
                "amount": p["amount"],
                "currency": p["currency"],
                "remittance_information": p["remittance_information"],
                "date": day,
            }
            for p in stored["payments"]
        ]
        assert read[0]["Cdtr"]["Nm"] == "Jurgen Muller-Ludenscheidt"
        assert read[0]["RmtInf"]["Ustrd"] == ["Rechnung Nr. 2026/114 Strasse"]
        assert read[1]["Cdtr"]["Nm"] == "Societe Generale OEuvres"
    after = (await h.client.get(f"/v2/payment/batch/{batch['id']}", headers=h.headers())).json()[
        "data"
    ]
    assert after["status"] == "exported"
    assert [p["status"] for p in after["payments"]] == ["exported"] * 3
    assert [c["status"] for c in after["history"]] == ["pending_authorisation", "exported"]
    assert after["connect_url"] is None
    assert [e["status"] for e in await status_events(h) if e["payment_id"] == batch["id"]] == [
        "pending_authorisation",
        "exported",
    ]


async def test_downloading_again_gives_the_same_file_and_each_download_is_audited(
    harness: Harness,
) -> None:
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h)
    created = await initiate(h, customer, account_id=account["id"])
    path = f"/v2/payment/{created['id']}/pain.001"
    first = await h.client.post(path, headers=h.headers())
    assert first.status_code == 200, first.text
    h.clock.advance(minutes=5)
    again = await h.client.post(path, headers=h.headers())
    assert again.status_code == 200, again.text
    assert again.content == first.content
    [tx] = iso20022.transfers(iso20022.read(first.content, pain001.V03))
    assert tx["PmtId"]["EndToEndId"] == created["end_to_end_id"]
    batch = await create_batch(
        h,
        customer,
        [{"creditor_name": "A", "creditor_iban": CREDITOR_IBAN, "amount": "1", "currency": "EUR"}],
        account_id=account["id"],
    )
    batch_file = await h.client.post(
        f"/v2/payment/batch/{batch['id']}/pain.001", headers=h.headers()
    )
    assert batch_file.status_code == 200, batch_file.text
    downloads = {
        ("POST", "/v2/payment/{payment_id:str}/pain.001"): [first, again],
        ("POST", "/v2/payment/batch/{batch_id:str}/pain.001"): [batch_file],
    }
    assert set(downloads) == PAYMENT_FILES
    seen = []
    for responses in downloads.values():
        for response in responses:
            async with h.hub.db.transaction() as session:
                [entry] = (
                    await session.execute(
                        select(AuditEntry).where(
                            AuditEntry.request_id == response.headers["x-request-id"]
                        )
                    )
                ).scalars()
            assert entry.detail["customer_id"] == customer
            assert entry.detail["account_ids"] == [account["id"]]
            seen.append(
                (
                    entry.action,
                    entry.target_id,
                    entry.detail["resource"],
                    entry.detail["first_export"],
                )
            )
    assert seen == [
        ("payment.exported", created["id"], "payment_file", 1),
        ("payment.exported", created["id"], "payment_file", 0),
        ("payment.exported", batch["id"], "payment_batch_file", 1),
    ]


async def test_an_exported_payment_is_never_sent_cancelled_or_expired(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h)
    created = await initiate(h, customer, account_id=account["id"])
    # the user opened the connect page before the file was downloaded, and logs in after:
    # the bank is never asked
    driver = PaymentDriver(h)
    await driver.open(created["connect_url"])
    await driver.agree()
    exported = await h.client.post(f"/v2/payment/{created['id']}/pain.001", headers=h.headers())
    assert exported.status_code == 200, exported.text
    await driver.login("user_good")
    callback = await driver.end()
    assert callback.payload["status"] == "error"
    assert callback.payload["error"] == "payment_exported"
    # the link no longer opens
    link = await h.client.get(created["connect_url"].removeprefix("http://testserver.local"))
    assert link.status_code == 400
    async with h.hub.db.transaction() as session:
        row = (await session.execute(select(Payment))).scalar_one()
        assert row.sent_at is None
        assert row.bank_payment_id is None
        assert row.status == "exported"
    refused = await h.client.delete(f"/v2/payment/{created['id']}", headers=h.headers())
    assert refused.status_code == 409
    assert refused.json()["error"] == "PaymentNotCancellable"
    assert refused.json()["extra"]["status"] == "exported"
    h.clock.advance(hours=3)
    await sweep(h).sweep()
    assert (await h.client.get(f"/v2/payment/{created['id']}", headers=h.headers())).json()["data"][
        "status"
    ] == "exported"


async def test_what_cannot_be_exported_is_refused_with_every_problem(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h)
    # no debtor account named, and a creditor without an IBAN: both named, nothing changes
    unnamed = await create_batch(
        h,
        customer,
        [
            {
                "creditor_name": "A",
                "creditor_iban": CREDITOR_IBAN,
                "amount": "1",
                "currency": "EUR",
            },
            {
                "creditor_name": "B",
                "creditor_account": "0532013000",
                "creditor_bic": "COBADEFFXXX",
                "amount": "2",
                "currency": "EUR",
            },
        ],
    )
    refused = await h.client.post(
        f"/v2/payment/batch/{unnamed['id']}/pain.001", headers=h.headers()
    )
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "PaymentNotExportable"
    assert body["extra"]["status"] == "pending_authorisation"
    problems = body["extra"]["problems"]
    assert any("`$.account_id`" in p for p in problems), problems
    assert any("`$.payments[1].creditor_iban`" in p for p in problems), problems
    assert (await h.client.get(f"/v2/payment/batch/{unnamed['id']}", headers=h.headers())).json()[
        "data"
    ]["status"] == "pending_authorisation"
    # not in euros
    pounds = await initiate(h, customer, account_id=account["id"], currency="GBP")
    refused = await h.client.post(f"/v2/payment/{pounds['id']}/pain.001", headers=h.headers())
    assert refused.status_code == 409
    assert any("`$.currency`" in p for p in refused.json()["extra"]["problems"])
    # already sent to the bank (executed), or cancelled: not a file any more
    executed = await initiate(h, customer, account_id=account["id"])
    await authorise(h, executed["connect_url"], "user_good")
    cancelled = await initiate(h, customer, account_id=account["id"])
    await h.client.delete(f"/v2/payment/{cancelled['id']}", headers=h.headers())
    for payment_id, status in ((executed["id"], "executed"), (cancelled["id"], "cancelled")):
        refused = await h.client.post(f"/v2/payment/{payment_id}/pain.001", headers=h.headers())
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "PaymentNotExportable"
        assert refused.json()["extra"]["status"] == status
    # a batch is not a payment, an unknown version is a bad request
    assert (
        await h.client.post(f"/v2/payment/{unnamed['id']}/pain.001", headers=h.headers())
    ).json()["error"] == "PaymentNotFound"
    single = await initiate(h, customer, account_id=account["id"])
    unknown = await h.client.post(
        f"/v2/payment/{single['id']}/pain.001",
        params={"version": "pain.001.001.02"},
        headers=h.headers(),
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "BadRequest"
    # a holder name outside the SEPA characters given instead is named
    greek = await h.client.post(
        f"/v2/payment/{single['id']}/pain.001",
        params={"debtor_name": "Αλέξης"},
        headers=h.headers(),
    )
    assert greek.status_code == 409
    assert any("`$.debtor_name`" in p for p in greek.json()["extra"]["problems"])
    named = await h.client.post(
        f"/v2/payment/{single['id']}/pain.001",
        params={"debtor_name": "Müller GmbH"},
        headers=h.headers(),
    )
    assert named.status_code == 200, named.text
    [info] = iso20022.read(named.content, pain001.V03)["CstmrCdtTrfInitn"]["PmtInf"]
    assert info["Dbtr"]["Nm"] == "Muller GmbH"


async def test_a_1000_transfer_batch_exports_valid_and_adds_up(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h, daily_count=1000, daily_amount="10000000")
    transfers = [
        {
            "creditor_name": f"Employee {i:04d}",
            "creditor_iban": CREDITOR_IBAN,
            "amount": f"{1000 + i}.{i % 100:02d}",
            "currency": "EUR",
            "remittance_information": f"Salary 2026-12 {i}",
        }
        for i in range(1000)
    ]
    batch = await create_batch(h, customer, transfers, account_id=account["id"])
    started = time.perf_counter()
    response = await h.client.post(f"/v2/payment/batch/{batch['id']}/pain.001", headers=h.headers())
    took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert took < 10, took
    decoded = iso20022.read(response.content, pain001.V03)
    expected = sum((Decimal(t["amount"]) for t in transfers), Decimal(0))
    assert decoded["CstmrCdtTrfInitn"]["GrpHdr"]["NbOfTxs"] == "1000"
    assert decoded["CstmrCdtTrfInitn"]["GrpHdr"]["CtrlSum"] == expected == Decimal(batch["total"])
    read = iso20022.transfers(decoded)
    assert sum((tx["Amt"]["InstdAmt"]["$"] for tx in read), Decimal(0)) == expected
    assert len({tx["PmtId"]["EndToEndId"] for tx in read}) == 1000
    # no execution date asked: the file asks for the day it was exported
    assert {tx["_date"] for tx in read} == {h.clock().date().isoformat()}


#: lock requests waiting, of connections to the test's database (PostgreSQL)
WAITING = text(
    "SELECT count(*) FROM pg_locks WHERE NOT granted"
    " AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
)


async def until_waiting(h: Harness, task: asyncio.Task[Any]) -> None:
    """Until ``task`` waits for a lock another unit of work holds: on PostgreSQL for the
    payment's row, on SQLite for the writer's turn."""
    if h.hub.db.dialect == "sqlite":
        for _ in range(10):  # its first steps reach the writers' lock, which the test holds
            await asyncio.sleep(0)
        assert not task.done(), task
        return
    deadline = time.monotonic() + 10
    while True:
        assert not task.done(), task
        async with h.hub.db.transaction() as session:
            if (await session.execute(WAITING)).scalar_one():
                return
        assert time.monotonic() < deadline, "the send neither finished nor waited"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("other", ["send", "sweep", "cancel"])
async def test_an_export_and_another_decision_at_once_never_both_happen(
    harness: Harness, other: str
) -> None:
    """The user logs in on the connect page (``send``), the sweep expires unauthorised
    payments, or the partner cancels, while the file is being downloaded: whichever decides
    first, the other sees it; the bank never gets an exported payment, nor does an exported
    payment end expired or cancelled."""
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h)
    created = await initiate(h, customer, account_id=account["id"])
    service = h.hub.catalogue.get(SPARBANK)
    assert service is not None
    run = h.hub.engine.build(service, {})
    await run.connector.authenticate({"username": "user_good", "password": "pass_good"})
    bank: Any = run.connector
    initiated: list[Any] = []
    initiate_at_bank = bank.initiate_payment

    async def counted(order: Any) -> Any:
        initiated.append(order)
        return await initiate_at_bank(order)

    bank.initiate_payment = counted
    tenant = await app_id(h)
    if other == "sweep":
        h.clock.advance(hours=2)  # unauthorised long enough to expire
    deciding: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
        "send": lambda: PaymentAuthorisation(
            h.hub.db, h.hub.keyring, h.hub.clock, tenant, created["id"]
        ).send(run.connector, run.state),
        "sweep": lambda: sweep(h).sweep(),
        "cancel": lambda: h.client.delete(f"/v2/payment/{created['id']}", headers=h.headers()),
    }
    async with h.hub.db.transaction(write=True) as session:
        await tenancy.enter(session, tenant)
        exported = await export.export(
            session,
            cipher=h.hub.keyring,
            clock=h.hub.clock,
            account_details=h.hub.engine.account_details,
            service=service,
            app_id=tenant,
            payment_id=created["id"],
            kind=SINGLE,
            version=pain001.V03,
            debtor_name=None,
        )
        assert exported.first
        task: asyncio.Task[Any] = asyncio.create_task(deciding[other]())
        await until_waiting(h, task)
    await task
    assert initiated == []
    async with h.hub.db.transaction() as session:
        row = await session.get(Payment, created["id"])
        assert row is not None
        assert (row.status, row.sent_at, row.bank_payment_id) == ("exported", None, None)
    seen = await h.client.get(f"/v2/payment/{created['id']}", headers=h.headers())
    assert [c["status"] for c in seen.json()["data"]["history"]] == [
        "pending_authorisation",
        "exported",
    ]


async def test_a_payment_sent_while_the_file_was_asked_for_is_not_exported(
    harness: Harness,
) -> None:
    """The connect page sends the payment (its ``sent_at`` committed under the row's lock)
    while the partner asks for the file: the export waits, then sees it sent and refuses."""
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h)
    created = await initiate(h, customer, account_id=account["id"])
    tenant = await app_id(h)
    async with h.hub.db.transaction(write=True) as session:
        await tenancy.enter(session, tenant)
        row = await services.get(session, tenant, created["id"], lock=True)
        task = asyncio.create_task(
            h.client.post(f"/v2/payment/{created['id']}/pain.001", headers=h.headers())
        )
        await until_waiting(h, task)
        row.sent_at = h.clock()
    refused = await task
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "PaymentNotExportable"
    assert "on its way to the bank" in refused.json()["message"]
    assert (await h.client.get(f"/v2/payment/{created['id']}", headers=h.headers())).json()["data"][
        "status"
    ] == "pending_authorisation"


def bank_statement(iban: str, debits: list[tuple[str, str, str]], day: str) -> bytes:
    """A camt.053 statement of the debtor's account as the bank would give it after executing
    an uploaded file: one booked debit per (EndToEndId, amount, creditor)."""
    entries = "".join(
        f"""<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><BkTxCd/>
<NtryDtls><TxDtls><Refs><EndToEndId>{reference}</EndToEndId></Refs>
<RltdPties><Cdtr><Nm>{creditor}</Nm></Cdtr></RltdPties>
<RmtInf><Ustrd>Transfer {n}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""
        for n, (reference, amount, creditor) in enumerate(debits)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>statement-1</MsgId><CreDtTm>{day}T18:00:00</CreDtTm></GrpHdr>
<Stmt><Id>1</Id><CreDtTm>{day}T18:00:00</CreDtTm>
<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>EUR</Ccy></Acct>{entries}</Stmt>
</BkToCstmrStmt></Document>""".encode()


async def test_the_executed_transfers_of_a_file_are_linked_to_the_payment(
    harness: Harness,
) -> None:
    """The user uploaded the file and the bank executed it: the debits that come back in the
    account's statement carry the file's EndToEndIds and are linked to the batch."""
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h)
    batch = await create_batch(
        h,
        customer,
        [
            {
                "creditor_name": "Supplier A",
                "creditor_iban": CREDITOR_IBAN,
                "amount": "10.00",
                "currency": "EUR",
            },
            {
                "creditor_name": "Supplier B",
                "creditor_iban": CREDITOR_IBAN,
                "amount": "20.50",
                "currency": "EUR",
            },
        ],
        account_id=account["id"],
    )
    exported = await h.client.post(f"/v2/payment/batch/{batch['id']}/pain.001", headers=h.headers())
    assert exported.status_code == 200, exported.text
    day = h.clock().date().isoformat()
    read = iso20022.transfers(iso20022.read(exported.content, pain001.V03))
    statement = bank_statement(
        account["iban"],
        [
            (tx["PmtId"]["EndToEndId"], str(tx["Amt"]["InstdAmt"]["$"]), tx["Cdtr"]["Nm"])
            for tx in read
        ],
        day,
    )
    uploaded = await upload(h, customer, "statement.xml", statement)
    assert uploaded.status_code == 200, uploaded.text
    login_secret = uploaded.json()["data"]["secret"]
    rows = (
        await h.client.get("/v2/transaction", headers=h.headers(login_secret=login_secret))
    ).json()["data"]
    linked = sorted((r["amount"], r["payment_id"]) for r in rows if r.get("payment_id"))
    assert linked == [("-10.00", batch["id"]), ("-20.50", batch["id"])]
    assert {r["meta"]["end_to_end_id"] for r in rows} == {
        p["end_to_end_id"] for p in batch["payments"]
    }
