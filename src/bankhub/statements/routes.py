"""``POST /v2/statement``: import a statement file for a customer (multipart, up to 20 MB)."""

from __future__ import annotations

import re
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
from bankhub.errors import DomainError, ErrorCode
from bankhub.security import idempotency, scopes
from bankhub.statements import ParsedStatement
from bankhub.statements.csvfiles import CsvMapping
from bankhub.statements.importer import announce_import, import_statement, parse_file
from bankhub.statements.schemas import StatementImportEnvelope, import_out
from bankhub.sync import feed

AnyRequest = Request[Any, Any, Any]

STATEMENT_PATH = "/v2/statement"
#: statements may be large; every other route keeps the app-wide 1 MB limit
MAX_STATEMENT_BYTES = 20 * 1024 * 1024


@dataclass
class StatementUpload:
    """The multipart form: ``customer_id``, ``file`` and, to add to a login, ``login_id``;
    ``mapping`` (JSON) for a table no bank profile knows, ``currency`` for a QIF file."""

    customer_id: str
    file: UploadFile
    login_id: str | None = None
    mapping: str | None = None
    currency: str | None = None


Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Col = Name | Annotated[int, msgspec.Meta(ge=0, le=500)]


class ColumnMappingIn(msgspec.Struct, forbid_unknown_fields=True):
    """Which column holds what, for a CSV or XLSX layout no bank profile knows. Columns are
    header cells as written, or 0-based positions when ``header_row`` is false. Give ``amount``
    (signed) or ``debit``/``credit``, and ``currency`` or ``currency_column``."""

    date: Col
    amount: Col | None = None
    debit: Col | None = None
    credit: Col | None = None
    description: Annotated[list[Col], msgspec.Meta(max_length=10)] = []
    counterparty: Col | None = None
    counterparty_account: Col | None = None
    value_date: Col | None = None
    id: Col | None = None
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None
    currency_column: Col | None = None
    date_format: Annotated[str, msgspec.Meta(pattern=r"^(?:%[dmYyb]|[^%]){2,20}$")] = "%d.%m.%Y"
    delimiter: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] = ";"
    encoding: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    skip_lines: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    header_row: bool = True
    decimal_separator: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] = ","
    thousands_separator: Annotated[str, msgspec.Meta(max_length=1)] = "."
    account_number: Name | None = None
    iban: Name | None = None
    account_name: Name | None = None

    def to_mapping(self) -> CsvMapping:
        return CsvMapping(
            date_column=self.date,
            amount_column=self.amount,
            debit_column=self.debit,
            credit_column=self.credit,
            description_columns=tuple(self.description),
            currency=self.currency,
            currency_column=self.currency_column,
            id_column=self.id,
            value_date_column=self.value_date,
            merchant_column=self.counterparty,
            counterparty_account_column=self.counterparty_account,
            account_number=self.account_number,
            iban=self.iban,
            account_name=self.account_name,
            date_format=self.date_format,
            delimiter=self.delimiter,
            encoding=self.encoding,
            skip_lines=self.skip_lines,
            header_row=self.header_row,
            decimal_separator=self.decimal_separator,
            thousands_separator=self.thousands_separator,
        )


def read_mapping(value: str | None) -> CsvMapping | None:
    """The ``mapping`` form field, or a DataInvalid error naming what is wrong in it."""
    if value is None or not value.strip():
        return None
    try:
        return msgspec.json.decode(value, type=ColumnMappingIn).to_mapping()
    except msgspec.DecodeError as exc:
        raise DomainError(ErrorCode.DATA_INVALID, f"mapping: {exc}", {"field": "mapping"}) from None


def read_currency(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        extra = {"field": "currency", "currency": value[:10]}
        raise DomainError(ErrorCode.DATA_INVALID, "currency must be an ISO 4217 code", extra)
    return code


def _login_id(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    if not value.strip().isdigit():
        extra = {"login_id": value[:40]}
        raise DomainError(ErrorCode.DATA_INVALID, "login_id must be a login's numeric id", extra)
    return int(value)


@post(
    STATEMENT_PATH,
    opt=idempotency.shows_secret(audit.account_data(scopes.write()), "data", "secret"),
    status_code=200,
    tags=["statement"],
    summary="Import a statement file (OFX, camt, MT940, QIF, CSV, XLSX)",
    description=(
        "A `multipart/form-data` upload with the fields `customer_id`, `file` (up to 20 MB) and "
        "optionally `login_id`. The format is found from the content: OFX/QFX, camt, MT940, "
        "QIF (give its `currency`), or a CSV/XLSX export of a bank bankhub has a profile for. "
        "A table of any other layout is read with `mapping`, a JSON object naming its columns, "
        'e.g. `{"date": "Date", "amount": "Amount", "description": ["Text"], "currency": "EUR", '
        '"date_format": "%d/%m/%Y", "delimiter": ",", "decimal_separator": ".", '
        '"thousands_separator": ","}` (or `debit` and `credit` columns; `counterparty`, '
        "`value_date`, `id`, `skip_lines`, `header_row`, `encoding`). "
        "With `login_id` the file is added to that statement login of the "
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
    try:
        mapping, currency = read_mapping(data.mapping), read_currency(data.currency)
        parsed = await parse_file(await data.file.read(), filename, currency, mapping)
    except DomainError as refused:
        await _feed_refused(hub, auth, data.customer_id, filename, refused)
        raise
    # write: on SQLite, imports in this process take turns (one customer's two imports at once
    # must not both open a login for the same accounts; PostgreSQL locks the customer's row)
    try:
        return await _imported(hub, auth, request, data, parsed, login_id, filename)
    except DomainError as refused:
        await _feed_refused(hub, auth, data.customer_id, filename, refused)
        raise


async def _feed_refused(
    hub: HubDep, auth: AuthDep, customer_id: str, filename: str | None, refused: DomainError
) -> None:
    """A refused file is a line of the Bank Feed too, with its error, in a unit of work of its
    own (the import's rolled back)."""
    async with hub.db.transaction(write=True) as session:
        app = await auth.app(session)
        await feed.record_refused_file(
            session,
            app_id=app.id,
            kind="api",
            customer_id=customer_id,
            at=hub.clock(),
            outcome=refused.code.value,
            error=refused.message,
            file_name=filename,
        )


async def _imported(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    data: StatementUpload,
    parsed: ParsedStatement,
    login_id: int | None,
    filename: str | None,
) -> StatementImportEnvelope:
    async with hub.db.transaction(write=True) as session:
        app = await auth.app(session)
        outcome = await import_statement(
            session,
            hub.engine,
            app,
            data.customer_id,
            parsed,
            login_id,
            source="api",
            file_name=filename,
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
        await announce_import(
            session,
            app.id,
            data.customer_id,
            outcome,
            file_name=filename,
            source="api",
            now=hub.clock(),
        )
    return StatementImportEnvelope(import_out(outcome))


STATEMENT_ROUTES = [post_statement]
