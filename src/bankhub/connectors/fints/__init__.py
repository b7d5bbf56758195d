"""German banks over FinTS 3.0 PIN/TAN (python-fints)."""

from bankhub.connectors.fints.connector import FinTSConnector, TanChallenge

__all__ = ["FinTSConnector", "TanChallenge"]
