"""Find a statement file's format from its first bytes and hand it to that format's parser."""

from __future__ import annotations

from bankhub.statements.model import ParsedStatement, StatementError

#: the largest statement file accepted (a year of a busy business account is a few MB)
MAX_FILE_BYTES = 20 * 1024 * 1024


def parse(data: bytes, filename: str | None = None, currency: str | None = None) -> ParsedStatement:
    """The file read by the format its content shows; ``currency`` is for formats that state
    none (QIF)."""
    if not data.strip():
        raise StatementError("the file is empty", problem="empty")
    if len(data) > MAX_FILE_BYTES:
        raise StatementError(
            f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB", problem="too_large"
        )
    from bankhub.statements import camt, csvfiles, mt940, ofx, qif

    if qif.sniff(data):
        return qif.parse(data, currency)
    for sniff, read in (
        (ofx.sniff, ofx.parse),
        (camt.sniff, camt.parse),
        (mt940.sniff, mt940.parse),
        (csvfiles.sniff, csvfiles.parse),
    ):
        if sniff(data):
            return read(data)
    hint = f" ({filename})" if filename else ""
    table = csvfiles.explain(data)
    if table is not None:
        raise StatementError(f"the file{hint}: {table}", format="csv", problem="unknown_format")
    raise StatementError(
        f"the file{hint} is not OFX/QFX, camt.052/053/054, MT940/MT942, QIF or a known CSV or "
        "spreadsheet export",
        problem="unknown_format",
    )
