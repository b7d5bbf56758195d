"""SimpleFIN: read accounts through a SimpleFIN server (usually the SimpleFIN Bridge)."""

from bankhub.connectors.simplefin.connector import SimplefinConnector

__all__ = ["SimplefinConnector"]
