"""The ``statement`` connector: the file is the credential, parsing it is the login.

The connect page and the import API hand the file in as the credential ``file`` (Base64 of the
bytes) with an optional ``filename`` hint. Nothing is fetched from anywhere: the accounts and
transactions are the file's. There is no unattended refresh; a new file is a new import.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import date
from typing import ClassVar

from bankhub.connectors.base import (
    AccountRecord,
    Answer,
    AuthFlow,
    ConnectorContext,
    ConnectorFailure,
    ConnectorInfo,
    CredentialField,
    FieldKind,
    ProviderUnavailable,
    TransactionRecord,
)
from bankhub.statements import ParsedStatement, StatementError, parse_statement
from bankhub.statements.csvfiles import CsvMapping, parse_with_mapping
from bankhub.statements.model import Problem

FILE_FIELD = "file"
NAME_FIELD = "filename"


class StatementUnreadable(ConnectorFailure):
    """The file is not a statement bankhub can read."""

    status = "wrong_credentials"
    needs_user = True

    def __init__(self, message: str = "", *, problem: Problem = "unreadable") -> None:
        super().__init__(message)
        #: what is wrong, for the end user's words (the message is the technical detail)
        self.problem: Problem = problem


def encode_file(data: bytes) -> str:
    """How a file travels in the credentials mapping."""
    return base64.b64encode(data).decode("ascii")


def parse_upload(
    data: bytes,
    filename: str | None,
    currency: str | None = None,
    mapping: CsvMapping | None = None,
) -> ParsedStatement:
    """Parse a file, turning the parser's error into a failure with its message. With a
    ``mapping`` the file is read as a table with the columns it names (a layout no profile
    knows); ``currency`` is for a format that states none (QIF)."""
    if not data:
        raise StatementUnreadable("The file is empty.", problem="empty")
    try:
        if mapping is not None:
            return parse_with_mapping(data, mapping)
        return parse_statement(data, filename, currency)
    except StatementError as error:
        raise StatementUnreadable(error.message, problem=error.problem) from None


class StatementConnector:
    """Serves services of type ``statement``; one instance reads one file."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id="statement",
        version="1",
        credential_fields=(
            CredentialField(
                FILE_FIELD,
                "Statement file",
                FieldKind.FILE,
                help="OFX/QFX, camt.052/053/054, MT940/MT942, QIF or a bank's CSV or XLSX export",
            ),
        ),
        auth_flows=(AuthFlow.FILE,),
        unattended_refreshes_per_day=0,
        history_days=36500,
        consent_days=180,
        description="Imports statement files the user downloaded from their bank.",
    )

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        self.parsed: ParsedStatement | None = None

    def load(self, parsed: ParsedStatement) -> None:
        """Use a statement parsed elsewhere (the API and CLI parse before they open a login)."""
        self.parsed = parsed

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        try:
            data = base64.b64decode(credentials.get(FILE_FIELD, ""), validate=True)
        except (binascii.Error, ValueError):
            raise StatementUnreadable("The upload is not a file.") from None
        self.parsed = parse_upload(data, credentials.get(NAME_FIELD) or None)

    async def open_file(self) -> None:
        """The login step of an upload that was parsed already; fails if nothing was loaded."""
        self._statement()

    async def resume(self, answer: Answer) -> None:
        raise StatementUnreadable("A statement import asks no questions.")

    async def open_session(self) -> None:
        raise ProviderUnavailable(
            "A statement login is not refreshed from a bank; import a newer file instead"
        )

    def identity(self) -> str | None:
        """A file names no bank user, so ``None``: its accounts decide, by their numbers (or
        IBANs) and the statement's account ids."""
        return None

    def _statement(self) -> ParsedStatement:
        if self.parsed is None:
            raise ProviderUnavailable("No statement file was given")
        return self.parsed

    async def fetch_accounts(self) -> list[AccountRecord]:
        return [account.to_account_record() for account in self._statement().accounts]

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        for found in self._statement().accounts:
            record = found.to_account_record()
            if record.bank_id == account.bank_id and record.name == account.name:
                return [
                    t
                    for t in found.transactions
                    if (since is None or t.booking_date >= since)
                    and (until is None or t.booking_date <= until)
                ]
        return []
