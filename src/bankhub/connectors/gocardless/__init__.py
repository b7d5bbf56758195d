"""GoCardless Bank Account Data as an upstream connector (docs/connectors-gocardless.md)."""

from bankhub.connectors.gocardless.connector import GoCardlessConnector

__all__ = ["GoCardlessConnector"]
