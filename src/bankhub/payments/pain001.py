"""A payment or batch as an ISO 20022 ``pain.001`` credit-transfer initiation file, for banks
that take payments only as an upload to their online banking.

The file is written by sepaxml (a maintained generator, the one python-fints already brings),
then finished here where sepaxml decides otherwise than bankhub needs:

- ``MsgId``, ``PmtInfId`` and ``CreDtTm`` come from the payment and the time it was exported,
  not from sepaxml's random ids and the machine's local clock: downloading the file again
  gives the same file, which a bank that refuses a ``MsgId`` it saw before recognises;
- ``BtchBookg`` is ``false``: each transfer is booked on its own line of the debtor's
  statement, with its ``EndToEndId``, which is how the account's next refresh links it to the
  payment (sepaxml's batch mode asks for one summed booking);
- a debtor bank without a known BIC is named ``Othr/Id`` ``NOTPROVIDED`` (EPC's IBAN-only
  rule) instead of the empty ``FinInstnId`` sepaxml leaves;
- a transfer without remittance carries no ``RmtInf`` (an empty ``Ustrd`` breaks the schema).

Versions: ``pain.001.001.03`` is the default because it is the one every SEPA bank in Germany
and the euro area accepts for uploads today (the German banks' DFÜ agreement and the EPC's
2009 guidelines are built on it); ``pain.001.001.09`` is the version of the current EPC SEPA
Credit Transfer rulebook (2019 message set), which banks take increasingly and will require
once the 2009 version is retired. Transfers are grouped into one ``PmtInf`` per requested
execution date. The finished file is checked against the schema of its version before it is
handed out: a file a bank would refuse is never given to the user.

SEPA files carry euros only, to IBANs; names and remittance reach here already in the SEPA
character set (:mod:`bankhub.payments.validation`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources

from lxml import etree
from sepaxml import SepaTransfer

V03 = "pain.001.001.03"
V09 = "pain.001.001.09"
VERSIONS = (V03, V09)
DEFAULT_VERSION = V03
MEDIA_TYPE = "application/xml"
#: where EPC's IBAN-only rule puts the debtor's bank when its BIC is not known
NOT_PROVIDED = "NOTPROVIDED"


@dataclass(frozen=True, slots=True)
class Debtor:
    name: str
    iban: str
    bic: str | None


@dataclass(frozen=True, slots=True)
class FileTransfer:
    end_to_end_id: str
    creditor_name: str
    creditor_iban: str
    creditor_bic: str | None
    #: euros, at the currency's scale (two decimals)
    amount: Decimal
    remittance: str | None
    execution_date: date


class FileError(Exception):
    """The generator produced a file its own version's schema refuses (a bug, never input)."""


def namespace(version: str) -> str:
    return f"urn:iso:std:iso:20022:tech:xsd:{version}"


@functools.cache
def _schema(version: str) -> etree.XMLSchema:
    # sepaxml's own copy of the ISO 20022 schema (the tests check the files against an
    # independent copy of it too, docs/payments.md)
    source = resources.files("sepaxml") / "schemas" / f"{version}.xsd"
    return etree.XMLSchema(etree.fromstring(source.read_bytes(), _parser()))


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _cents(amount: Decimal) -> int:
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} has more than two decimals")
    return int(cents)


def credit_transfer_file(
    *,
    message_id: str,
    created_at: datetime,
    debtor: Debtor,
    transfers: Sequence[FileTransfer],
    version: str = DEFAULT_VERSION,
) -> bytes:
    """The pain.001 file of ``transfers`` from ``debtor``'s account (UTF-8 XML), one ``PmtInf``
    per execution date, ids derived from ``message_id`` (at most 32 characters)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown pain.001 version {version!r}")
    if not transfers:
        raise ValueError("a pain.001 file holds at least one transfer")
    config: dict[str, object] = {
        "name": debtor.name,
        "IBAN": debtor.iban,
        "batch": True,
        "currency": "EUR",
    }
    if debtor.bic:
        config["BIC"] = debtor.bic
    writer = SepaTransfer(config, schema=version, clean=False)
    # sepaxml groups transfers by execution date in the order the dates first appear: sorted
    # here so that the payment infos follow the calendar
    for transfer in sorted(transfers, key=lambda t: t.execution_date):
        payment: dict[str, object] = {
            "name": transfer.creditor_name,
            "IBAN": transfer.creditor_iban,
            "amount": _cents(transfer.amount),
            "execution_date": transfer.execution_date,
            "description": transfer.remittance or "",
            "endtoend_id": transfer.end_to_end_id,
        }
        if transfer.creditor_bic:
            payment["BIC"] = transfer.creditor_bic
        writer.add_payment(payment)
    return _finish(
        writer.export(validate=False), version, message_id, created_at, debtor.bic is None
    )


def _finish(
    produced: bytes, version: str, message_id: str, created_at: datetime, no_bic: bool
) -> bytes:
    ns = {"p": namespace(version)}
    q = f"{{{ns['p']}}}"
    root = etree.fromstring(produced, _parser())
    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", ns)
    if header is None:
        raise FileError("sepaxml wrote no group header")
    _set(header, "p:MsgId", ns, message_id)
    _set(header, "p:CreDtTm", ns, created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    for number, info in enumerate(root.iterfind("p:CstmrCdtTrfInitn/p:PmtInf", ns), start=1):
        _set(info, "p:PmtInfId", ns, f"{message_id[:31]}-{number:03d}")
        _set(info, "p:BtchBookg", ns, "false")
        agent = info.find("p:DbtrAgt/p:FinInstnId", ns)
        if no_bic and agent is not None and len(agent) == 0:
            other = etree.SubElement(agent, f"{q}Othr")
            etree.SubElement(other, f"{q}Id").text = NOT_PROVIDED
        for remittance in info.iterfind("p:CdtTrfTxInf/p:RmtInf", ns):
            text = remittance.findtext("p:Ustrd", namespaces=ns)
            if not text:
                remittance.getparent().remove(remittance)
    document: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    schema = _schema(version)
    if not schema.validate(etree.fromstring(document, _parser())):
        raise FileError(f"the {version} file breaks its schema: {schema.error_log.last_error}")
    return document


def _set(parent: etree._Element, path: str, ns: dict[str, str], text: str) -> None:
    node = parent.find(path, ns)
    if node is None:
        raise FileError(f"sepaxml wrote no {path.removeprefix('p:')}")
    node.text = text


def file_name(payment_id: str, version: str) -> str:
    """The download's name: the payment and the message version."""
    return f"bankhub-{payment_id}.{version}.xml"
