"""The SFTP statement drop: apps upload statement files over SFTP, authenticated by their
signature keys, and bankhub imports them as ``POST /v2/statement`` would (docs/sftp.md)."""
