"""Signed API requests: the public keys an app registers and HTTP Message Signatures (RFC 9421)
checked against them at the API's edge (docs/signatures.md)."""
