"""UK Open Banking Read/Write API v3.1.x account information (AIS); banks are catalogue data."""

from bankhub.connectors.ukob.connector import UkobConnector
from bankhub.connectors.ukob.params import UkobParams

__all__ = ["UkobConnector", "UkobParams"]
