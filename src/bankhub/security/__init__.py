"""Security domain."""
