"""Connectors reach banks. They know nothing of the database or of HTTP requests to bankhub."""
