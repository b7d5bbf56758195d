"""Spreadsheet exports (.xlsx), read through openpyxl, as rows of cells like a CSV file's.

Some banks (Vietnam's among them) offer account history only as a spreadsheet. openpyxl is the
maintained reader of the format; it parses the workbook's XML through defusedxml (a bankhub
dependency), so entity expansion is refused. What openpyxl does not guard is the ZIP container:
a 20 MB upload may inflate to gigabytes, so the archive's declared sizes are checked first.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time
from decimal import Decimal

from bankhub.statements.model import StatementError

#: the most a workbook may inflate to (a year of a busy account is a few MB of sheet XML)
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_MEMBERS = 2000
#: the most rows read from the sheet (a statement has thousands, not millions)
MAX_ROWS = 200_000
_MAGIC = b"PK\x03\x04"

Cell = str | int | float | Decimal | date | datetime | time | bool | None


def is_xlsx(data: bytes) -> bool:
    """A ZIP archive holding a workbook part (the sniff reads only the central directory)."""
    if not data.startswith(_MAGIC):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (zipfile.BadZipFile, ValueError):
        return False


def _check_archive(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise StatementError(f"the spreadsheet is not a readable .xlsx file ({exc})") from None
    if len(members) > MAX_MEMBERS:
        raise StatementError(
            f"the spreadsheet holds {len(members)} parts, more than a statement",
            problem="too_large",
        )
    unpacked = sum(m.file_size for m in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise StatementError(
            f"the spreadsheet unpacks to {unpacked // (1024 * 1024)} MB, more than the "
            f"{MAX_UNPACKED_BYTES // (1024 * 1024)} MB a statement may hold",
            problem="too_large",
        )


def read_rows(data: bytes) -> list[tuple[int, list[Cell]]]:
    """The first worksheet's rows with their 1-based row numbers, cells as openpyxl types them."""
    _check_archive(data)
    from openpyxl import load_workbook  # imported on use: most imports are not spreadsheets

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise StatementError(f"the spreadsheet cannot be read ({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0]
        rows: list[tuple[int, list[Cell]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > MAX_ROWS:
                raise StatementError(
                    f"the spreadsheet has more than {MAX_ROWS} rows", problem="too_large"
                )
            rows.append((number, list(values)))
        return rows
    finally:
        book.close()


def text(cell: Cell, *, decimal: str, date_format: str) -> str:
    """A cell as the text a CSV export would hold: numbers with the layout's decimal mark and
    no grouping, dates in the layout's date format."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, datetime):
        return cell.strftime(date_format)
    if isinstance(cell, date):
        return cell.strftime(date_format)
    if isinstance(cell, int | float | Decimal):
        # repr of a float is its shortest exact decimal form: 1234.5, never 1234.499999
        digits = format(Decimal(repr(cell)) if isinstance(cell, float) else Decimal(cell), "f")
        return digits.replace(".", decimal)
    return str(cell)
