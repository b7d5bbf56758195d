"""Where the SFTP host key lives and its fingerprint, without asyncssh: the dashboard shows the
fingerprint for pinning in processes that may not have the ``sftp`` extra installed."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

#: the private key's file name in the data dir (OpenSSH format); ``.pub`` beside it
FILE_NAME = "sftp_host_ed25519_key"


def key_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def public_path(data_dir: Path) -> Path:
    return data_dir / (FILE_NAME + ".pub")


def fingerprint_of_line(line: str) -> str | None:
    """``SHA256:…`` of an OpenSSH public key line, as ``ssh-keygen -l`` prints it."""
    parts = line.split()
    if len(parts) < 2:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def published_fingerprint(data_dir: Path) -> str | None:
    """The fingerprint of the host key the SFTP drop made on this data dir; None while it has
    never started here."""
    try:
        line = public_path(data_dir).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return fingerprint_of_line(line)
