"""Bank statement files: OFX/QFX, camt.052/053/054, MT940/MT942, QIF, CSV and XLSX exports.

Each format has a module with ``sniff(data) -> bool`` and ``parse(data) -> ParsedStatement``;
:func:`parse_statement` finds the format and returns what the file holds. A file that cannot be
read raises :class:`StatementError` with a message that names the problem (and, where it helps,
the line or element), and nothing is stored from it.
"""

from __future__ import annotations

from bankhub.statements.model import ParsedStatement, StatementAccount, StatementError

__all__ = ["ParsedStatement", "StatementAccount", "StatementError", "parse_statement"]


def parse_statement(
    data: bytes, filename: str | None = None, currency: str | None = None
) -> ParsedStatement:
    """Detect the file's format from its content (the name is only a hint) and parse it;
    ``currency`` is the account's, for a format that states none (QIF)."""
    from bankhub.statements import detect

    return detect.parse(data, filename, currency)
