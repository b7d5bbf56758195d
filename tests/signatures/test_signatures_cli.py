"""``bankhub signatures``: an app's signature keys from the operator's command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from bankhub.cli import cli
from tests.signatures.signing import new_private_key, openssh, pem


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV", "BANKHUB_KEK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    return tmp_path


def _json(args: list[str], stdin: str | None = None) -> Any:
    result = CliRunner().invoke(cli, args, input=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_add_list_revoke(data_dir: Path) -> None:
    app = _json(["apps", "create", "Signing app", "--json"])["client_id"]
    key_file = data_dir / "signer.pub"
    key_file.write_text(openssh(new_private_key("ed25519")))
    added = _json(
        ["signatures", "add", "--app", app, str(key_file), "--label", "ci", "--required", "--json"]
    )[0]
    assert (added["algorithm"], added["label"], added["required"]) == ("ed25519", "ci", True)
    assert added["created_by"] == "operator:cli"
    assert added["fingerprint"].startswith("SHA256:")
    from_stdin = _json(
        ["signatures", "add", "--app", app, "-", "--json"],
        stdin=pem(new_private_key("ecdsa-p256-sha256")),
    )[0]
    assert from_stdin["algorithm"] == "ecdsa-p256-sha256"
    listed = _json(["signatures", "list", "--app", app, "--json"])
    assert [k["id"] for k in listed] == [added["id"], from_stdin["id"]]
    revoked = _json(["signatures", "revoke", "--app", app, added["id"], "--json"])[0]
    assert revoked["revoked_by"] == "operator:cli"
    audited = _json(["audit", "--action", "signature_key.revoked", "--json"])
    assert [entry["target_id"] for entry in audited] == [added["id"]]


def test_a_weak_key_is_refused_naming_the_field(data_dir: Path) -> None:
    app = _json(["apps", "create", "Signing app", "--json"])["client_id"]
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    result = CliRunner().invoke(cli, ["signatures", "add", "--app", app, "-"], input=pem(weak))
    assert result.exit_code == 2
    assert "3072" in result.output
    assert "public_key" in result.output
    assert _json(["signatures", "list", "--app", app, "--json"]) == []
    unknown = CliRunner().invoke(cli, ["signatures", "revoke", "--app", app, "sk_nothing"])
    assert unknown.exit_code == 2
