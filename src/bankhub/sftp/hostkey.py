"""The SFTP server's host key: Ed25519, made on first start under the data dir and kept.

Partners pin its fingerprint (``bankhub sftp --fingerprint``, the dashboard's Signatures
page), so it must outlive restarts and upgrades: it is never regenerated while the file is
there. The private key file is created with mode 0600 in one ``open`` (no window where it is
readable); the public half beside it lets the dashboard show the fingerprint without reading
the private key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import asyncssh

from bankhub.sftp.pinning import key_path, public_path


class HostKeyError(Exception):
    """The host key file exists but cannot be used (its mode, its content)."""


def load_or_create(data_dir: Path) -> asyncssh.SSHKey:
    """The host key, made now when there is none yet."""
    path = key_path(data_dir)
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    key = asyncssh.generate_private_key("ssh-ed25519", comment="bankhub sftp host key")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: theirs is the key
        return _load(path)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key.export_private_key("openssh"))
    public_path(data_dir).write_bytes(key.export_public_key("openssh"))
    return key


def _load(path: Path) -> asyncssh.SSHKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HostKeyError(
            f"{path} is readable by others (mode {mode:04o}); make it 0600 (chmod 600 {path})"
        )
    try:
        key = asyncssh.read_private_key(path)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise HostKeyError(f"{path} is not an SSH private key: {exc}") from None
    public = path.with_name(path.name + ".pub")
    if not public.exists():
        public.write_bytes(key.export_public_key("openssh"))
    return key


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:…``, as ``ssh-keygen -l`` and an SFTP client's first-connection prompt show it."""
    return key.get_fingerprint("sha256")
