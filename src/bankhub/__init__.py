"""bankhub: a self-hosted bank-data aggregation hub speaking the Finsify Hub API v2."""

__version__ = "0.1.0"
