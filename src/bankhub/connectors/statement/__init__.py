"""Statement files as a connector: an uploaded OFX, camt, MT940 or CSV file is one "fetch"."""

from bankhub.connectors.statement.connector import StatementConnector, StatementUnreadable

__all__ = ["StatementConnector", "StatementUnreadable"]
