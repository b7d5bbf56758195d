"""Logins domain."""
