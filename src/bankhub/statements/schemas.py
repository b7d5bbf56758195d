"""The answer of a statement import: what ``POST /v2/statement`` returns and what an SFTP drop
writes back as ``<file>.result.json`` (docs/sftp.md), one shape for both."""

from __future__ import annotations

import msgspec

from bankhub.statements.importer import ImportOutcome


class ImportedAccountOut(msgspec.Struct):
    id: int
    #: the IBAN or account number with all but the last four characters hidden
    number_masked: str | None
    currency: str
    #: transactions this import added (those already stored are not counted)
    imported: int
    #: the closing balance the file states, exactly as written (None when it states none)
    closing_balance: str | None
    closing_date: str | None


class StatementImportOut(msgspec.Struct):
    #: the login the file went to: the one named, else the customer's statement login that
    #: holds the file's accounts, else a new one
    login_id: int
    #: the login-secret, only when this import created the login; it is shown this once
    secret: str | None
    format: str
    accounts: list[ImportedAccountOut]
    #: whether this import created the login
    login_created: bool


class StatementImportEnvelope(msgspec.Struct):
    data: StatementImportOut
    version: str = "v2"


def import_out(outcome: ImportOutcome) -> StatementImportOut:
    return StatementImportOut(
        login_id=outcome.login_id,
        secret=outcome.secret,
        login_created=outcome.login_created,
        format=outcome.format,
        accounts=[
            ImportedAccountOut(
                id=a.id,
                number_masked=a.number_masked,
                currency=a.currency,
                imported=a.imported,
                closing_balance=format(a.closing_balance, "f")
                if a.closing_balance is not None
                else None,
                closing_date=a.closing_date.isoformat() if a.closing_date else None,
            )
            for a in outcome.accounts
        ],
    )
