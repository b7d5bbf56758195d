"""The pain.001 writer, read back against ISO 20022's schema from an independent source: ids and
dates as bankhub gives them, one payment info per execution date with its own count and control
sum, each transfer booked on its own line, a debtor bank without a BIC, and the two copies of
the schema (the generator's and the independent one) being the same schema."""

from __future__ import annotations

import importlib.resources
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from lxml import etree

from bankhub.accounts.schemas import transaction_out
from bankhub.accounts.services import TransactionView
from bankhub.connectors.base import end_to_end_id
from bankhub.payments import pain001
from tests.support import iso20022

PAYMENT = "5b0c7a52-3f1e-4c8e-9a1d-2f6f0c1d9e01"
CREATED = datetime(2026, 12, 7, 9, 30, 5, tzinfo=UTC)
DEBTOR = pain001.Debtor("Max Mustermann", "DE02120300000000202051", "BYLADEM1001")


def transfer(position: int, amount: str, day: date, **fields: object) -> pain001.FileTransfer:
    values: dict[str, object] = {
        "end_to_end_id": end_to_end_id(PAYMENT, position),
        "creditor_name": f"Supplier {position}",
        "creditor_iban": "DE89370400440532013000",
        "creditor_bic": None,
        "amount": Decimal(amount),
        "remittance": f"Invoice {position}",
        "execution_date": day,
    }
    values.update(fields)
    return pain001.FileTransfer(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", pain001.VERSIONS)
def test_transfers_on_different_dates_are_grouped_into_payment_infos(version: str) -> None:
    monday, tuesday, friday = date(2026, 12, 7), date(2026, 12, 8), date(2026, 12, 11)
    given = [
        transfer(0, "10.00", tuesday),
        transfer(1, "0.01", monday),
        transfer(2, "999999999.99", tuesday, creditor_bic="COBADEFFXXX"),
        transfer(3, "12.34", friday, remittance=None),
        transfer(4, "5.50", monday),
    ]
    document = pain001.credit_transfer_file(
        message_id=PAYMENT.replace("-", ""),
        created_at=CREATED,
        debtor=DEBTOR,
        transfers=given,
        version=version,
    )
    decoded = iso20022.read(document, version)
    header = decoded["CstmrCdtTrfInitn"]["GrpHdr"]
    assert header["MsgId"] == PAYMENT.replace("-", "")
    assert header["CreDtTm"] == "2026-12-07T09:30:05Z"
    assert header["NbOfTxs"] == "5"
    assert header["CtrlSum"] == sum((t.amount for t in given), Decimal(0))
    infos = decoded["CstmrCdtTrfInitn"]["PmtInf"]
    dates = [i["ReqdExctnDt"]["Dt"] if version != pain001.V03 else i["ReqdExctnDt"] for i in infos]
    assert dates == ["2026-12-07", "2026-12-08", "2026-12-11"]
    for info, day in zip(infos, (monday, tuesday, friday), strict=True):
        mine = [t for t in given if t.execution_date == day]
        assert info["NbOfTxs"] == str(len(mine))
        assert info["CtrlSum"] == sum((t.amount for t in mine), Decimal(0))
        assert [tx["PmtId"]["EndToEndId"] for tx in info["CdtTrfTxInf"]] == [
            t.end_to_end_id for t in mine
        ]
        # every transfer its own line on the debtor's statement, with its EndToEndId
        assert info["BtchBookg"] is False
        assert info["DbtrAcct"]["Id"]["IBAN"] == DEBTOR.iban
        assert info["Dbtr"]["Nm"] == DEBTOR.name
        level = info["PmtTpInf"]["SvcLvl"]  # repeatable from .09 on
        assert (level if isinstance(level, list) else [level]) == [{"Cd": "SEPA"}]
    assert len({i["PmtInfId"] for i in infos}) == 3
    assert all(len(i["PmtInfId"]) <= 35 for i in infos)
    read = {tx["PmtId"]["EndToEndId"]: tx for tx in iso20022.transfers(decoded)}
    for t in given:
        tx = read[t.end_to_end_id]
        assert tx["Amt"]["InstdAmt"]["$"] == t.amount
        assert tx["Amt"]["InstdAmt"]["@Ccy"] == "EUR"
        assert tx["Cdtr"]["Nm"] == t.creditor_name
        assert tx["CdtrAcct"]["Id"]["IBAN"] == t.creditor_iban
        assert tx.get("RmtInf", {}).get("Ustrd") == ([t.remittance] if t.remittance else None)
        assert tx["_date"] == t.execution_date.isoformat()
    bic = read[given[2].end_to_end_id]["CdtrAgt"]["FinInstnId"]
    assert bic == ({"BIC": "COBADEFFXXX"} if version == pain001.V03 else {"BICFI": "COBADEFFXXX"})


@pytest.mark.parametrize("version", pain001.VERSIONS)
def test_a_debtor_bank_without_a_known_bic_is_not_provided(version: str) -> None:
    document = pain001.credit_transfer_file(
        message_id="a" * 32,
        created_at=CREATED,
        debtor=pain001.Debtor("Erika Musterfrau", "DE02120300000000202051", None),
        transfers=[transfer(0, "1.00", date(2026, 12, 7))],
        version=version,
    )
    [info] = iso20022.read(document, version)["CstmrCdtTrfInitn"]["PmtInf"]
    assert info["DbtrAgt"]["FinInstnId"] == {"Othr": {"Id": "NOTPROVIDED"}}


def test_the_same_payment_gives_the_same_file() -> None:
    def once() -> bytes:
        return pain001.credit_transfer_file(
            message_id="b" * 32,
            created_at=CREATED,
            debtor=DEBTOR,
            transfers=[transfer(i, "2.00", date(2026, 12, 7)) for i in range(3)],
        )

    assert once() == once()


def test_an_amount_finer_than_cents_is_never_rounded_into_a_file() -> None:
    with pytest.raises(ValueError, match="two decimals"):
        pain001.credit_transfer_file(
            message_id="c" * 32,
            created_at=CREATED,
            debtor=DEBTOR,
            transfers=[transfer(0, "1.005", date(2026, 12, 7))],
        )


@pytest.mark.parametrize("version", pain001.VERSIONS)
def test_the_generators_schema_is_iso_20022s(version: str) -> None:
    """sepaxml's copy, which checks every file at run time, is the independent copy's schema:
    the same once comments and layout are set aside (canonical XML)."""

    def canonical(data: bytes) -> bytes:
        parser = etree.XMLParser(remove_comments=True, remove_blank_text=True)
        canonical_form: bytes = etree.tostring(etree.fromstring(data, parser), method="c14n")
        return canonical_form

    bundled = importlib.resources.files("sepaxml") / "schemas" / f"{version}.xsd"
    independent = iso20022.fetch.schema_file(version).read_bytes()
    assert bundled.read_bytes() != independent  # two copies, not one file twice
    assert canonical(bundled.read_bytes()) == canonical(independent)
    assert f'targetNamespace="{pain001.namespace(version)}"'.encode() in independent


@pytest.mark.parametrize("key", ["end_to_end_id", "endToEndId"])
def test_a_debit_carrying_bankhubs_end_to_end_id_is_linked_whoever_read_it(key: str) -> None:
    """Statement files and the sandbox keep the EndToEndId as ``end_to_end_id``, Berlin Group
    banks (XS2A, GoCardless) as ``endToEndId``: an exported file's transfers are linked from
    either at the account's refresh."""
    row = TransactionView(
        id=1,
        original_id="x",
        date=date(2026, 12, 8),
        amount=Decimal("-10.00"),
        currency="EUR",
        description="Supplier 3",
        category="uncategorized",
        meta={key: end_to_end_id(PAYMENT, 3)},
        status="booked",
        pending_transaction_id=None,
    )
    assert transaction_out(row).payment_id == PAYMENT
