"""``bankhub banks``: import, dry run, enable and disable, list (SQLite, in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bankhub.cli import cli
from tests.banks.logo_host import LogoHost
from tests.banks.test_formats import XS2A_ADAPTER


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _run(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["banks", *args])
    assert result.exit_code == 0, result.output
    if "--json" in args:
        return json.loads(result.stdout)
    return result.stdout


def test_import_reports_counts_and_each_refusal_and_a_dry_run_stores_nothing(
    data_dir: Path,
) -> None:
    dry = _run("import", str(XS2A_ADAPTER), "--dry-run", "--json")
    assert isinstance(dry, dict)
    assert (dry["rows"], dry["added"], dry["refused"], dry["dry_run"]) == (1994, 1974, 20, True)
    assert _run("list", "--json") == []
    report = _run("import", str(XS2A_ADAPTER), "--json")
    assert isinstance(report, dict)
    assert (report["added"], report["updated"], report["unchanged"]) == (1974, 0, 0)
    refusals = {r["line"]: r["reason"] for r in report["refusals"]}
    assert refusals[53] == "BIC 'DEUTDE' is not a valid BIC (Invalid length '6')"
    assert len(refusals) == 20
    assert refusals[1461].startswith("URL 'https://simulator-xs2a.db.com/{Service Group}/DE")
    assert refusals[899] == "duplicate of line 896 (same name, BIC, BLZ, URL and adapter)"
    text = _run("import", str(XS2A_ADAPTER))
    assert isinstance(text, str)
    assert "line 805: skipped: BIC 'MARKDEF' is not a valid BIC" in text
    assert "1994 rows; 0 banks were added (disabled), 0 updated, 1974 unchanged, 20 rows" in text


def test_import_fetches_the_logos_and_reports_each_refusal(
    data_dir: Path, host: LogoHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert host.pki is not None
    monkeypatch.setenv("BANKHUB_CA_BUNDLE", str(host.pki.ca))
    banks = [
        {"name": f"Logo Bank {path}", "bic": "WELADED1BUB", "blz": blz, "logo_url": host.url(path)}
        | {"base_url": "https://xs2a.example/psd2"}
        for path, blz in (("/logo.jpg", "46051240"), ("/to-http.png", "69490000"))
    ]
    registry = data_dir / "banks.json"
    registry.write_text(json.dumps({"version": 1, "banks": banks}))
    report = _run("import", str(registry), "--json")
    assert report["added"] == 2
    assert report["logos"]["kept"] == 1
    assert report["logos"]["deferred"] == 0
    (refused,) = report["logos"]["refused"]
    assert refused["id"] == 1002
    assert refused["url"] == host.url("/to-http.png")
    assert "URL scheme must be https" in refused["reason"]
    # a second import fetches nothing that is not due; --no-logos fetches nothing at all
    asked = len(host.asked)
    again = _run("import", str(registry))
    assert "logos: 0 kept, 0 refused, 0 left for the background work" in again
    assert "logos" not in _run("import", str(registry), "--no-logos", "--json")
    assert len(host.asked) == asked


def test_enable_disable_and_list(data_dir: Path) -> None:
    _run("import", str(XS2A_ADAPTER))
    assert "2 banks enabled: 1001, 1002" in str(_run("enable", "1001", "1002"))
    assert "0 banks enabled" in str(_run("enable", "1001"))
    found = _run("list", "--q", "NOLADE21GRW", "--json")
    assert found == [
        {
            "id": 1002,
            "enabled": True,
            "name": "Sparkasse Vorpommern",
            "bic": "NOLADE21GRW",
            "blz": "15050500",
            "country_code": "DE",
            "connector": "xs2a",
            "base_url": "https://xs2a-sandbox.f-i-apim.de:8444/fixs2a-env/xs2a-api/12345678",
            "key": "xs2a-adapter:1edbdcff-ce4a-42ad-a0a5-dd4767ae0443",
        }
    ]
    assert "2 banks disabled" in str(_run("disable", "--all"))
    unknown = CliRunner().invoke(cli, ["banks", "enable", "1001", "99999"])
    assert unknown.exit_code == 1
    assert "no imported bank has the id 99999" in unknown.output
    listed = _run("list", "--json")
    assert isinstance(listed, list)
    assert not any(b["enabled"] for b in listed)
    neither = CliRunner().invoke(cli, ["banks", "enable"])
    assert neither.exit_code == 2


def test_a_file_broken_halfway_imports_nothing(data_dir: Path) -> None:
    good = {"name": "Musterbank", "bic": "WELADED1BUB", "base_url": "https://a.example"}
    text = json.dumps({"banks": [good, {**good, "key": "two"}]}, indent=2)
    broken = data_dir / "banks.json"
    broken.write_text(text[:-20])
    result = CliRunner().invoke(cli, ["banks", "import", str(broken)])
    assert result.exit_code == 1
    assert f"{broken}: line " in result.output
    assert "not JSON" in result.output
    assert _run("list", "--json") == []
    broken.write_text(text)
    assert "2 banks were added" in str(_run("import", str(broken)))


def test_gocardless_import_before_the_secrets_says_what_to_do(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["banks", "gocardless-import", "DE"])
    assert result.exit_code == 2, result.output
    assert "bankhub banks gocardless-secret" in result.output
    refused = CliRunner().invoke(cli, ["banks", "gocardless-import", "Germany"])
    assert refused.exit_code == 2, refused.output


def test_gocardless_secret_prompts_for_the_key_without_echoing_it(data_dir: Path) -> None:
    key = "k-" + "s" * 40
    result = CliRunner().invoke(
        cli, ["banks", "gocardless-secret", "--secret-id", "sid-1"], input=f"{key}\n"
    )
    assert result.exit_code == 0, result.output
    assert "stored (encrypted)" in result.output
    assert key not in result.output
    empty = CliRunner().invoke(
        cli, ["banks", "gocardless-secret", "--secret-id", "sid-1", "--secret-key", " "]
    )
    assert empty.exit_code == 2, empty.output
