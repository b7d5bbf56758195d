"""``POST /v2/statement``: import a statement file for a customer (multipart, up to 20 MB)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body

from bankhub.api.audit import account_data_read
from bankhub.api.openapi import APP_AUTH, APP_SECURITY, E, EnvelopeOperation, errors
from bankhub.api.principal import AuthDep, HubDep
from bankhub.audit import services as audit
from bankhub.connectors.statement.connector import StatementUnreadable, parse_upload
from bankhub.errors import DomainError, ErrorCode
from bankhub.security import idempotency, scopes
from bankhub.statements import ParsedStatement
from bankhub.statements.importer import ImportOutcome, import_statement

AnyRequest = Request[Any, Any, Any]

STATEMENT_PATH = "/v2/statement"
#: statements may be large; every other route keeps the app-wide 1 MB limit
MAX_STATEMENT_BYTES = 20 * 1024 * 1024


@dataclass
class StatementUpload:
    """The multipart form: ``customer_id``, ``file`` and, to add to a login, ``login_id``."""

    customer_id: str
    file: UploadFile
    login_id: str | None = None


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


def _login_id(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    if not value.strip().isdigit():
        extra = {"login_id": value[:40]}
        raise DomainError(ErrorCode.DATA_INVALID, "login_id must be a login's numeric id", extra)
    return int(value)


async def parse_in_thread(data: bytes, filename: str | None) -> ParsedStatement:
    """Parse off the event loop; a file bankhub cannot read is a DataInvalid error."""
    try:
        return await asyncio.to_thread(parse_upload, data, filename)
    except StatementUnreadable as failure:
        extra = {"filename": (filename or "")[:200]}
        raise DomainError(ErrorCode.DATA_INVALID, failure.message, extra) from None


@post(
    STATEMENT_PATH,
    opt=idempotency.shows_secret(audit.account_data(scopes.write()), "data", "secret"),
    status_code=200,
    tags=["statement"],
    summary="Import a statement file (OFX, camt, MT940, CSV)",
    description=(
        "A `multipart/form-data` upload with the fields `customer_id`, `file` (up to 20 MB) and "
        "optionally `login_id`. With `login_id` the file is added to that statement login of the "
        "customer. Without it, the file goes to the customer's statement login that already "
        "holds its accounts (by IBAN or account number and currency); only a file of accounts "
        "not seen before creates a new login of the statement-file service, whose `secret` (the "
        "login-secret) is returned this once. Transactions already stored (same file again, or "
        "an overlapping one) are not added twice. A file that cannot be read stores nothing and "
        "fails with `DataInvalid` and the parser's message."
    ),
    request_max_body_size=MAX_STATEMENT_BYTES,
    security=APP_SECURITY,
    operation_class=EnvelopeOperation,
    responses=errors(
        *APP_AUTH,
        E.BAD_REQUEST,
        E.DATA_INVALID,
        E.CUSTOMER_NOT_FOUND,
        E.LOGIN_NOT_FOUND,
        E.SERVICE_NOT_FOUND,
        write=True,
    ),
)
async def post_statement(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    data: Annotated[StatementUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
) -> StatementImportEnvelope:
    async with hub.db.transaction() as session:
        await auth.app(session)
    login_id = _login_id(data.login_id)
    filename = data.file.filename or None
    parsed = await parse_in_thread(await data.file.read(), filename)
    # write: on SQLite, imports in this process take turns (one customer's two imports at once
    # must not both open a login for the same accounts; PostgreSQL locks the customer's row)
    async with hub.db.transaction(write=True) as session:
        app = await auth.app(session)
        outcome = await import_statement(
            session, hub.engine, app, data.customer_id, parsed, login_id
        )
        account_data_read(
            request,
            resource="statement_import",
            action=audit.IMPORTED,
            login_ids=[outcome.login_id],
            customer_id=data.customer_id,
            account_ids=[a.id for a in outcome.accounts],
            rows=sum(a.imported for a in outcome.accounts),
            session=session,
        )
    return StatementImportEnvelope(import_out(outcome))


STATEMENT_ROUTES = [post_statement]
