"""Persistence: engine and sessions, the declarative base, custom column types, migrations."""
