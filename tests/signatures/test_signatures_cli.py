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


def test_key_sources_added_listed_synced_and_removed(data_dir: Path) -> None:
    """``bankhub signatures source``: a loopback ``.keys`` URL (development allows it) is synced
    when added, again on ``sync`` (with its ETag: a 304), and removing it revokes its keys."""
    from tests.signatures.key_host import key_host

    app = _json(["apps", "create", "Signing app", "--json"])["client_id"]
    with key_host() as host:
        host.keys_file("/user.keys", openssh(new_private_key("ed25519")) + " ci", "ssh-dss AAAA x")
        url = host.url("/user.keys")
        (added,) = _json(["signatures", "source", "add", "--app", app, url, "--required", "--json"])
        assert (added["state"], added["keys"], added["required"]) == ("ok", 1, True)
        assert added["skipped"] == ["line 2: key type ssh-dss is not accepted"]
        (synced,) = _json(["signatures", "source", "sync", "--app", app, added["id"], "--json"])
        assert synced["state"] == "ok"
        assert host.not_modified == 1
        (key,) = _json(["signatures", "list", "--app", app, "--json"])
        assert key["source"] == f"synced:{url}"
        assert key["created_by"] == f"sync:{added['id']}"
        host.stop()
        failing = CliRunner().invoke(
            cli, ["signatures", "source", "sync", "--app", app, added["id"]]
        )
        assert failing.exit_code == 1
        assert "state=failing" in failing.output
    (listed,) = _json(["signatures", "source", "list", "--app", app, "--json"])
    assert listed["state"] == "failing"
    assert "ConnectError" in listed["last_error"]
    _json(["signatures", "source", "remove", "--app", app, added["id"], "--json"])
    assert _json(["signatures", "source", "list", "--app", app, "--json"]) == []
    (key,) = _json(["signatures", "list", "--app", app, "--json"])
    assert key["revoked_by"] == "operator:cli"
    refused = CliRunner().invoke(
        cli, ["signatures", "source", "add", "--app", app, "ftp://example.com/keys"]
    )
    assert refused.exit_code == 2
    assert "This URL cannot be a key source" in refused.output
