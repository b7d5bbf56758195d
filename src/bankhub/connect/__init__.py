"""Connect domain."""
