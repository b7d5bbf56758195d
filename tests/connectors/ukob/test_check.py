"""``bankhub banks check --connect`` for a UK Open Banking bank: the bank's own transport and
signing certificates (catalogue params) checked for dates and key, then tried on the bank's
token endpoint over mutual TLS (a client-credentials token; nothing is created)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bankhub.cli import cli
from tests.connectors.ukob.conftest import params
from tests.connectors.ukob.peer import ObBank
from tests.connectors.xs2a.eidas_pki import EidasPki


def test_banks_check_connect_tries_a_uk_bank(
    bank: ObBank, ukob_pki: EidasPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    own = {k: v for k, v in params(ukob_pki, bank).items() if k not in ("slug", "name")}
    entry = {
        "id": 78,
        "slug": "peer-bank-uk",
        "name": "Peer Bank UK",
        "type": "bank",
        "country_code": "GB",
        "has_balance": True,
        "color": {"primary": "#000000", "secondary": "#ffffff"},
        "connector": "ukob",
        "params": own,
    }
    catalogue = tmp_path / "services.json"
    catalogue.write_text(json.dumps([entry]))
    monkeypatch.setenv("BANKHUB_CATALOGUE_FILE", str(catalogue))

    accepted = CliRunner().invoke(cli, ["banks", "check", "78", "--connect"])
    assert accepted.exit_code == 0, accepted.output
    assert "ok: QWAC C=DE,O=Example TPP GmbH,CN=qwac" in accepted.output
    assert "the bank accepts the transport certificate, the signing key" in accepted.output
    (granted,) = [e for e in bank.exchanges if e.path == "/token"]
    assert granted.status == 200
    assert not bank.consents  # nothing created

    # a signing certificate that is not the registered one: the bank refuses the client
    own["qseal_cert_file"] = str(ukob_pki.qseal_ec.cert)
    own["qseal_key_file"] = str(ukob_pki.qseal_ec.key)
    catalogue.write_text(json.dumps([entry]))
    refused = CliRunner().invoke(cli, ["banks", "check", "78", "--connect"])
    assert refused.exit_code == 2, refused.output
    assert "refused: Peer Bank UK refused bankhub's client registration" in refused.output
