"""OFX Direct Connect: a bank's OFX server, asked with the user's id and password."""

from bankhub.connectors.ofxdirect.connector import OfxDirectConnector

__all__ = ["OfxDirectConnector"]
