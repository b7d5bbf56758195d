"""eIDAS for XS2A: the QWAC as TLS client certificate, the QSealC signing every request, and the
start-up checks, against a peer bank behind TLS that checks all of it on its own."""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from bankhub.catalogue import Catalogue, Service
from bankhub.cli import cli
from bankhub.connectors.base import (
    Answer,
    ConnectorContext,
    MemoryStateStore,
    NeedsRedirect,
    ProviderUnavailable,
)
from bankhub.connectors.xs2a import Xs2aConnector
from bankhub.connectors.xs2a.signing import RequestSigner
from bankhub.hub import Hub
from bankhub.security import eidas
from bankhub.security.keyring import new_kek_text
from bankhub.security.tls import InstitutionClients
from tests.conftest import FakeClock, make_settings
from tests.connectors.xs2a.conftest import PSU_IP, RETURN_URL, login
from tests.connectors.xs2a.eidas_peer import running_tls
from tests.connectors.xs2a.eidas_pki import PASSPHRASE, EidasPki, Issued
from tests.connectors.xs2a.peer import PeerBank

NOW = datetime.now(UTC)


def _service(bank: PeerBank, pki: EidasPki, **params: Any) -> Service:
    return Service(
        id=9001,
        slug="peer-tls-de",
        name="Peer Bank TLS",
        provider="test",
        type="bank",
        country_code="DE",
        has_balance=True,
        color_primary="#000000",
        color_secondary="#ffffff",
        connector="xs2a",
        params={
            "base_url": bank.base_url,
            "sca_approaches": ["REDIRECT"],
            "ca_bundle": str(pki.bank_ca),  # S31: the bank's server checked against its CA
            **params,
        },
    )


def _operator(pki: EidasPki, qwac: Issued, qseal: Issued) -> dict[str, Any]:
    return {
        "xs2a_qwac_cert_file": qwac.cert,
        "xs2a_qwac_key_file": qwac.key,
        "xs2a_qseal_cert_file": qseal.cert,
        "xs2a_qseal_key_file": qseal.key,
    }


def _respond_with(http: httpx.AsyncClient) -> Any:
    async def respond(interaction: Any) -> Answer:
        assert isinstance(interaction, NeedsRedirect)
        page = await http.get(interaction.url, params={"decision": "approve"})
        assert page.status_code == 302
        return Answer("redirect", params=dict(httpx.URL(page.headers["location"]).params))

    return respond


@pytest.mark.parametrize("seal", ["qseal", "qseal_ec"])
async def test_a_signed_consent_and_every_read_over_mutual_tls(
    eidas_pki: EidasPki, tmp_path: Path, seal: str
) -> None:
    """test_a_signed_consent_and_every_read_over_mutual_tls — eIDAS, S31: with the operator's
    QWAC and QSealC in the settings, the engine's XS2A connector creates a consent, passes the
    redirect SCA, reads accounts, balances and every page of transactions and revokes, all over
    TLS with the QWAC as client certificate, the bank's server checked against its CA, and
    every request's Digest and Signature (RSA and EC seals) verified by the peer on its own."""
    qseal: Issued = getattr(eidas_pki, seal)
    with running_tls(PeerBank(page_size=20), eidas_pki) as (bank, checks):
        service = _service(bank, eidas_pki)
        settings = make_settings(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
            **_operator(eidas_pki, eidas_pki.qwac, qseal),
        )
        hub = Hub.build(
            settings, catalogue=Catalogue([service], tmp_path / "media"), clock=FakeClock()
        )
        try:
            run = hub.engine.build(service, return_url=RETURN_URL, psu_ip_address=PSU_IP)
            connector = run.connector
            assert isinstance(connector, Xs2aConnector)
            assert connector.context.http is not hub.http  # its own client, with the QWAC
            assert await login(connector, _respond_with(connector.context.http), {}) == 1
            accounts = await connector.fetch_accounts()
            assert [a.bank_id for a in accounts] == ["acc-giro", "acc-save", "acc-usd"]
            rows = await connector.fetch_transactions(accounts[0], None, None)
            assert len(rows) == 62  # 60 booked and 2 pending, over 4 pages of 20
            await connector.revoke()
        finally:
            await hub.close()

    assert checks.refused() == []
    qwac_subject = eidas_pki.qwac.certificate.subject.rfc4514_string()
    assert set(checks.client_subjects) == {qwac_subject}
    api_calls = [v for v in checks.verdicts if not v[1].startswith("/bank/")]
    assert len(api_calls) >= 10
    signed = {(m, t.split("?")[0]): h for m, t, h in bank.requests if "signature" in h}
    consent = signed["POST", "/psd2/v1/consents"]
    assert 'headers="digest x-request-id date tpp-redirect-uri"' in consent["signature"]
    certificate = base64.b64decode(consent["tpp-signature-certificate"])
    assert certificate == qseal.certificate.public_bytes(serialization.Encoding.DER)
    assert f"SN={qseal.certificate.serial_number:X}," in consent["signature"]
    assert all("signature" in h for m, t, h in bank.requests if not t.startswith("/bank/"))


async def test_a_bank_s_own_certificates_replace_the_operators(
    eidas_pki: EidasPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_a_bank_s_own_certificates_replace_the_operators — eIDAS: a catalogue entry's
    ``qwac_cert_file``/``qwac_key_file`` (an encrypted key, its passphrase in the environment
    variable ``qwac_key_passphrase_env`` names) are presented to that bank instead of the
    operator's; without the passphrase the bank cannot be used, and the message names the
    variable."""
    monkeypatch.setenv("PEER_QWAC_PASSPHRASE", PASSPHRASE)
    own = {
        "qwac_cert_file": str(eidas_pki.qwac_encrypted.cert),
        "qwac_key_file": str(eidas_pki.qwac_encrypted.key),
        "qwac_key_passphrase_env": "PEER_QWAC_PASSPHRASE",
    }
    with running_tls(PeerBank(), eidas_pki) as (bank, checks):
        service = _service(bank, eidas_pki, **own)
        settings = make_settings(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
            **_operator(eidas_pki, eidas_pki.qwac, eidas_pki.qseal),
        )
        hub = Hub.build(
            settings, catalogue=Catalogue([service], tmp_path / "media"), clock=FakeClock()
        )
        try:
            connector = hub.engine.build(
                service, return_url=RETURN_URL, psu_ip_address=PSU_IP
            ).connector
            with pytest.raises(NeedsRedirect):
                await connector.authenticate({})
        finally:
            await hub.close()
    assert checks.refused() == []
    assert checks.client_subjects == [eidas_pki.qwac_encrypted.certificate.subject.rfc4514_string()]

    monkeypatch.delenv("PEER_QWAC_PASSPHRASE")
    with pytest.raises(eidas.EidasError, match="PEER_QWAC_PASSPHRASE"):
        eidas.check_catalogue(settings, [("service 9001", "xs2a", own)], NOW)


async def _connector_with(
    bank: PeerBank, pki: EidasPki, clients: InstitutionClients, qwac: eidas.Credential | None
) -> Xs2aConnector:
    signer = RequestSigner(pki.qseal.certificate, _key(pki.qseal), FakeClock())
    return Xs2aConnector(
        ConnectorContext(
            institution={"slug": "peer", "name": "Peer Bank", "base_url": bank.base_url},
            http=clients.client_for({"ca_bundle": str(pki.bank_ca)}, qwac),
            state=MemoryStateStore(),
            clock=FakeClock(),
            return_url=RETURN_URL,
            options={"psu_ip_address": PSU_IP, "request_signer": signer},
        )
    )


def _key(issued: Issued) -> Any:
    return serialization.load_pem_private_key(issued.key.read_bytes(), password=None)


def _credential(issued: Issued, role: str) -> eidas.Credential:
    source = eidas.Source("qwac", str(issued.cert), str(issued.key), issued.cert, issued.key)
    return eidas.load(source, role=role, now=NOW)


async def test_the_bank_refuses_a_missing_or_roleless_client_certificate(
    eidas_pki: EidasPki,
) -> None:
    """test_the_bank_refuses_a_missing_or_roleless_client_certificate — eIDAS: without a QWAC
    the bank's TLS handshake fails, and a QWAC without PSP_AI is answered ROLE_INVALID, which
    the connector reports as the operator's certificate fault."""
    async with httpx.AsyncClient() as shared:
        clients = InstitutionClients(shared, timeout=5.0)
        try:
            with running_tls(PeerBank(), eidas_pki) as (bank, checks):
                none = await _connector_with(bank, eidas_pki, clients, None)
                with pytest.raises(ProviderUnavailable, match="cannot be reached"):
                    await none.authenticate({})
                assert checks.verdicts == []

                roleless = _credential(eidas_pki.roleless, "PSP_PI")
                refused = await _connector_with(bank, eidas_pki, clients, roleless)
                with pytest.raises(ProviderUnavailable, match="eIDAS certificate") as why:
                    await refused.authenticate({})
                assert "ROLE_INVALID" in why.value.message
                assert [v[2] for v in checks.verdicts] == ["ROLE_INVALID"]
        finally:
            await clients.aclose()


async def test_a_tampered_body_fails_the_peers_digest_check(eidas_pki: EidasPki) -> None:
    """test_a_tampered_body_fails_the_peers_digest_check — eIDAS: a signed request whose body
    is changed after signing is refused (SIGNATURE_INVALID, the Digest); so is one whose signed
    header is changed; the same request untouched is accepted."""
    async with httpx.AsyncClient() as shared:
        clients = InstitutionClients(shared, timeout=5.0)
        try:
            with running_tls(PeerBank(), eidas_pki) as (bank, checks):
                http = clients.client_for(
                    {"ca_bundle": str(eidas_pki.bank_ca)}, _credential(eidas_pki.qwac, "PSP_AI")
                )
                signer = RequestSigner(
                    eidas_pki.qseal.certificate, _key(eidas_pki.qseal), FakeClock()
                )
                body = {
                    "access": {"accounts": [], "balances": [], "transactions": []},
                    "recurringIndicator": True,
                    "validUntil": "2026-12-31",
                    "frequencyPerDay": 4,
                }

                def signed() -> httpx.Request:
                    request = http.build_request(
                        "POST",
                        f"{bank.base_url}/v1/consents",
                        json=body,
                        headers={
                            "X-Request-ID": str(uuid.uuid4()),
                            "PSU-IP-Address": PSU_IP,
                            "TPP-Redirect-URI": RETURN_URL,
                        },
                    )
                    signer.sign(request)
                    return request

                good = await http.send(signed())
                assert good.status_code == 201, good.text

                original = signed()
                tampered_body = json.dumps({**body, "frequencyPerDay": 96}).encode()
                headers = {k: v for k, v in original.headers.items() if k != "content-length"}
                tampered = http.build_request(
                    "POST", original.url, content=tampered_body, headers=headers
                )
                answer = await http.send(tampered)
                assert answer.status_code == 401
                assert answer.json()["tppMessages"][0] == {
                    "category": "ERROR",
                    "code": "SIGNATURE_INVALID",
                    "text": "the Digest does not match the body",
                }

                forged = signed()
                forged.headers["TPP-Redirect-URI"] = "https://attacker.example/return"
                answer = await http.send(forged)
                assert answer.status_code == 401
                assert answer.json()["tppMessages"][0]["text"] == "the signature does not verify"
        finally:
            await clients.aclose()
    assert [v[2] for v in checks.verdicts] == ["ok", "SIGNATURE_INVALID", "SIGNATURE_INVALID"]


BAD = {
    "expired": ("expired", None, "the QWAC expired on"),
    "not yet valid": ("not_yet_valid", None, "the QWAC is not valid before"),
    "without the role": ("roleless", None, "lacks the PSD2 role PSP_AI (it has: PSP_PI)"),
    "without a PSD2 statement": ("no_statement", None, "carries no PSD2 QCStatement"),
    "with another key": ("qwac", "other_key", "the key does not match the certificate"),
    "encrypted, no passphrase": ("qwac_encrypted", None, "the key is encrypted; set its"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_bad_certificate_is_refused_at_start_up_naming_the_file(
    eidas_pki: EidasPki, tmp_path: Path, case: str
) -> None:
    """test_a_bad_certificate_is_refused_at_start_up_naming_the_file — eIDAS: a QWAC that is
    expired, not yet valid, without PSP_AI or any PSD2 statement, or whose key is another's or
    locked, stops start-up with one line naming the file and the fault."""
    name, other_key, fault = BAD[case]
    issued: Issued = getattr(eidas_pki, name)
    key = getattr(eidas_pki, other_key) if other_key else issued.key
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
        xs2a_qwac_cert_file=issued.cert,
        xs2a_qwac_key_file=key,
    )
    with pytest.raises(eidas.EidasError) as refused:
        eidas.check_catalogue(settings, [], NOW)
    message = str(refused.value)
    assert fault in message
    assert str(issued.cert if "key" not in fault else key) in message
    assert "\n" not in message


def test_a_wrong_passphrase_is_named_and_the_right_one_opens_the_key(
    eidas_pki: EidasPki, tmp_path: Path
) -> None:
    """test_a_wrong_passphrase_is_named_and_the_right_one_opens_the_key — eIDAS."""
    issued = eidas_pki.qwac_encrypted
    db = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"
    common = {"xs2a_qwac_cert_file": issued.cert, "xs2a_qwac_key_file": issued.key}
    wrong = make_settings(tmp_path, db, xs2a_qwac_key_passphrase="wrong", **common)
    with pytest.raises(eidas.EidasError, match="BANKHUB_XS2A_QWAC_KEY_PASSPHRASE does not open"):
        eidas.check_catalogue(wrong, [], NOW)
    right = make_settings(tmp_path, db, xs2a_qwac_key_passphrase=PASSPHRASE, **common)
    (found,) = eidas.check_catalogue(right, [("s", "xs2a", {"base_url": "https://b"})], NOW)
    assert found.qwac is not None
    assert found.qwac.statement.roles == {"PSP_AI", "PSP_PI"}
    assert found.qseal is None


def test_pem_settings_work_like_files(eidas_pki: EidasPki, tmp_path: Path) -> None:
    """test_pem_settings_work_like_files — eIDAS: BANKHUB_XS2A_QSEAL_CERT/KEY hold PEM text."""
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
        xs2a_qseal_cert=eidas_pki.qseal.cert.read_text(),
        xs2a_qseal_key=eidas_pki.qseal.key.read_text(),
    )
    (found,) = eidas.check_catalogue(settings, [("s", "xs2a", {})], NOW)
    assert found.qseal is not None
    assert found.qseal.label == "BANKHUB_XS2A_QSEAL_CERT"
    assert "PSP_AI" in found.qseal.describe()


def test_serve_and_worker_stop_on_a_bad_certificate(
    eidas_pki: EidasPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_serve_and_worker_stop_on_a_bad_certificate — eIDAS: ``bankhub serve`` and
    ``bankhub worker`` stop before serving with one line naming the expired QSealC's file;
    ``bankhub eidas check`` says the same, and describes good certificates."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_XS2A_QSEAL_CERT_FILE", str(eidas_pki.expired.cert))
    monkeypatch.setenv("BANKHUB_XS2A_QSEAL_KEY_FILE", str(eidas_pki.expired.key))

    def went_on(settings: object) -> None:
        raise AssertionError("the command went on past the eIDAS check")

    # both commands migrate the SQLite data dir first thing after their checks
    monkeypatch.setattr("bankhub.cli.migrate_schema", went_on)
    for command in (["serve"], ["worker"], ["eidas", "check"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2, (command, result.output)
        assert f"BANKHUB_XS2A_QSEAL_CERT_FILE {eidas_pki.expired.cert}" in result.output
        assert "the QSealC expired on" in result.output
        assert not (tmp_path / "bankhub.sqlite3").exists()  # stopped before anything

    monkeypatch.setenv("BANKHUB_XS2A_QSEAL_CERT_FILE", str(eidas_pki.qseal.cert))
    monkeypatch.setenv("BANKHUB_XS2A_QSEAL_KEY_FILE", str(eidas_pki.qseal.key))
    result = CliRunner().invoke(cli, ["eidas", "check"])
    assert result.exit_code == 0, result.output


async def test_a_certificate_that_expires_while_running_stops_being_presented(
    eidas_pki: EidasPki, tmp_path: Path
) -> None:
    """test_a_certificate_that_expires_while_running_stops_being_presented — eIDAS: start-up
    accepted the QWAC, but once its validity ends the bank's connector sends nothing and fails
    with ProviderUnavailable naming the file and the dates."""
    clock = FakeClock()
    with running_tls(PeerBank(), eidas_pki) as (bank, checks):
        service = _service(bank, eidas_pki)
        settings = make_settings(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
            **_operator(eidas_pki, eidas_pki.qwac, eidas_pki.qseal),
        )
        hub = Hub.build(settings, catalogue=Catalogue([service], tmp_path / "media"), clock=clock)
        try:
            first = hub.engine.build(service, return_url=RETURN_URL, psu_ip_address=PSU_IP)
            with pytest.raises(NeedsRedirect):
                await first.connector.authenticate({})
            clock.now = eidas_pki.qwac.certificate.not_valid_after_utc + timedelta(minutes=1)
            later = hub.engine.build(service, return_url=RETURN_URL, psu_ip_address=PSU_IP)
            with pytest.raises(ProviderUnavailable) as failed:
                await later.connector.authenticate({})
        finally:
            await hub.close()
    assert f"BANKHUB_XS2A_QWAC_CERT_FILE {eidas_pki.qwac.cert}" in failed.value.message
    assert "is valid only from" in failed.value.message
    assert len(checks.verdicts) == 1  # the first consent only


def test_eidas_check_connect_tries_the_certificates_on_the_bank(
    eidas_pki: EidasPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_eidas_check_connect_tries_the_certificates_on_the_bank — eIDAS: ``bankhub eidas
    check --connect`` sends one signed request over mutual TLS and reports that the bank
    accepts the certificates; without a QWAC it reports the bank's refusal (exit 2)."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_XS2A_QSEAL_CERT_FILE", str(eidas_pki.qseal.cert))
    monkeypatch.setenv("BANKHUB_XS2A_QSEAL_KEY_FILE", str(eidas_pki.qseal.key))
    with running_tls(PeerBank(), eidas_pki) as (bank, checks):
        entry = {
            "id": 77,
            "slug": "peer-tls",
            "name": "Peer Bank TLS",
            "type": "bank",
            "country_code": "DE",
            "has_balance": True,
            "color": {"primary": "#000000", "secondary": "#ffffff"},
            "connector": "xs2a",
            "params": {"base_url": bank.base_url, "ca_bundle": str(eidas_pki.bank_ca)},
        }
        catalogue = tmp_path / "services.json"
        catalogue.write_text(json.dumps([entry]))
        monkeypatch.setenv("BANKHUB_CATALOGUE_FILE", str(catalogue))

        without_qwac = CliRunner().invoke(cli, ["eidas", "check", "77", "--connect"])
        assert without_qwac.exit_code == 2, without_qwac.output
        assert "QWAC: none configured" in without_qwac.output
        assert "service 77 (Peer Bank TLS): refused:" in without_qwac.output
        assert checks.verdicts == []

        monkeypatch.setenv("BANKHUB_XS2A_QWAC_CERT_FILE", str(eidas_pki.qwac.cert))
        monkeypatch.setenv("BANKHUB_XS2A_QWAC_KEY_FILE", str(eidas_pki.qwac.key))
        accepted = CliRunner().invoke(cli, ["eidas", "check", "77", "--connect"])
        assert accepted.exit_code == 0, accepted.output
        assert "ok: QWAC C=DE,O=Example TPP GmbH,CN=qwac (serial" in accepted.output
        assert ",CN=qseal (serial" in accepted.output
        assert "roles PSP_AI, PSP_PI" in accepted.output
        assert "the bank accepts the certificates and the signature" in accepted.output
    assert checks.refused() == []
    assert [v[0] for v in checks.verdicts] == ["GET"]


def test_banks_check_finds_banks_imported_into_the_database(
    eidas_pki: EidasPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_banks_check_finds_banks_imported_into_the_database — eIDAS: a bank that exists only
    in the database (``bankhub banks import``, not yet enabled) is listed by ``bankhub banks
    check`` and tried on the bank with ``--connect``, with the operator's certificates."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_CA_BUNDLE", str(eidas_pki.bank_ca))
    for kind, issued in (("QWAC", eidas_pki.qwac), ("QSEAL", eidas_pki.qseal)):
        monkeypatch.setenv(f"BANKHUB_XS2A_{kind}_CERT_FILE", str(issued.cert))
        monkeypatch.setenv(f"BANKHUB_XS2A_{kind}_KEY_FILE", str(issued.key))
    with running_tls(PeerBank(), eidas_pki) as (bank, checks):
        registry = tmp_path / "banks.json"
        registry.write_text(
            json.dumps(
                {
                    "version": 1,
                    "banks": [
                        {
                            "name": "Imported Peer Bank",
                            "bic": "COBADEFFXXX",
                            "blz": "10040000",
                            "base_url": bank.base_url,
                            "connector": "xs2a",
                        }
                    ],
                }
            )
        )
        imported = CliRunner().invoke(cli, ["banks", "import", str(registry), "--json"])
        assert imported.exit_code == 0, imported.output
        (service_id,) = json.loads(imported.output)["added_ids"]

        listed = CliRunner().invoke(cli, ["banks", "check"])
        assert listed.exit_code == 0, listed.output
        assert f"service {service_id} (Imported Peer Bank):" in listed.output

        tried = CliRunner().invoke(cli, ["banks", "check", str(service_id), "--connect"])
        assert tried.exit_code == 0, tried.output
        assert (
            f"service {service_id} (Imported Peer Bank): the bank accepts the certificates"
            in tried.output
        )
        unknown = CliRunner().invoke(cli, ["banks", "check", str(service_id + 1000)])
        assert unknown.exit_code == 2
        assert f"no service {service_id + 1000} in the catalogue" in unknown.output
    assert checks.refused() == []
    assert [v[0] for v in checks.verdicts] == ["GET"]


def test_start_up_checks_the_certificates_an_enabled_imported_bank_names(
    eidas_pki: EidasPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_start_up_checks_the_certificates_an_enabled_imported_bank_names — eIDAS: a bank
    imported into the database with certificate files of its own has them checked at start-up
    once it is enabled: an expired one stops ``serve`` and ``worker`` naming the bank and the
    file; while the bank is disabled it stops nothing."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    registry = tmp_path / "banks.json"
    registry.write_text(
        json.dumps(
            {
                "version": 1,
                "banks": [
                    {
                        "name": "Own Certificates Bank",
                        "bic": "COBADEFFXXX",
                        "blz": "10040000",
                        "base_url": "https://xs2a.own-certificates.example/psd2",
                        "connector": "xs2a",
                        "qwac_cert_file": str(eidas_pki.expired.cert),
                        "qwac_key_file": str(eidas_pki.expired.key),
                    }
                ],
            }
        )
    )
    imported = CliRunner().invoke(cli, ["banks", "import", str(registry), "--json"])
    assert imported.exit_code == 0, imported.output
    (service_id,) = json.loads(imported.output)["added_ids"]

    def went_on(settings: object) -> None:
        raise AssertionError("the command went on past the eIDAS check")

    monkeypatch.setattr("bankhub.cli.migrate_schema", went_on)
    with pytest.raises(AssertionError, match="went on past"):
        CliRunner().invoke(cli, ["worker"], catch_exceptions=False)  # disabled: not checked

    enabled = CliRunner().invoke(cli, ["banks", "enable", str(service_id)])
    assert enabled.exit_code == 0, enabled.output
    for command in (["serve"], ["worker"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2, (command, result.output)
        assert (
            f"service {service_id} (Own Certificates Bank): params.qwac_cert_file "
            f"{eidas_pki.expired.cert}" in " ".join(result.output.split())
        )


def test_start_up_says_when_it_cannot_read_the_imported_banks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_start_up_says_when_it_cannot_read_the_imported_banks — eIDAS: a database file with
    no ``banks`` table yet holds no imported bank (start-up goes on without a word); one that is
    not a database is named in a warning that the imported banks' certificates were not
    checked, and start-up goes on to report it its own way."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))

    def went_on(settings: object) -> None:
        raise AssertionError("went on past the eIDAS check")

    monkeypatch.setattr("bankhub.cli.migrate_schema", went_on)
    database = tmp_path / "bankhub.sqlite3"
    sqlite3.connect(database).close()  # an empty database: not migrated yet
    quiet = CliRunner().invoke(cli, ["worker"])
    assert isinstance(quiet.exception, AssertionError), quiet.output
    assert "warning" not in quiet.output

    database.write_bytes(b"not a database at all " * 100)
    warned = CliRunner().invoke(cli, ["worker"])
    assert isinstance(warned.exception, AssertionError), warned.output
    assert "the certificates of imported banks were not checked" in " ".join(warned.output.split())


def test_banks_sharing_the_operators_certificates_read_them_once(
    eidas_pki: EidasPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_banks_sharing_the_operators_certificates_read_them_once — eIDAS: reading and
    checking a key costs about 0.1 s (RSA key validation), so start-up with thousands of
    imported banks reads the operator's QWAC and QSealC once each, not once per bank; a bank
    with files of its own adds one read."""
    reads: list[str] = []
    real = eidas.load

    def counted(source: eidas.Source, *, role: str, now: datetime) -> eidas.Credential:
        reads.append(source.cert_label)
        return real(source, role=role, now=now)

    monkeypatch.setattr(eidas, "load", counted)
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
        **_operator(eidas_pki, eidas_pki.qwac, eidas_pki.qseal),
    )
    own = {
        "qseal_cert_file": str(eidas_pki.qseal_ec.cert),
        "qseal_key_file": str(eidas_pki.qseal_ec.key),
    }
    services = [(f"service {i}", "xs2a", {"base_url": "https://b"}) for i in range(500)]
    found = eidas.check_catalogue(settings, [*services, ("own", "xs2a", own)], NOW)
    assert len(found) == 501
    assert len(reads) == 3
    assert found[-1].qseal is not None
    assert found[-1].qseal.certificate == eidas_pki.qseal_ec.certificate


def test_a_key_sealed_under_the_kek_is_opened_at_start_up(
    eidas_pki: EidasPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_a_key_sealed_under_the_kek_is_opened_at_start_up — eIDAS: ``bankhub eidas seal``
    writes the QSealC's key sealed under the KEK (0600, holding nothing of the clear key); the
    sealed file works as the key setting, also encrypted under a passphrase; under another KEK
    it is refused naming the file and the KEK it needs."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV"):
        monkeypatch.delenv(name, raising=False)
    kek, other_kek = new_kek_text(), new_kek_text()
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_KEK", kek)
    sealed = tmp_path / "qseal.sealed"
    result = CliRunner().invoke(
        cli, ["eidas", "seal", str(eidas_pki.qseal.key), "--out", str(sealed)]
    )
    assert result.exit_code == 0, result.output
    assert sealed.stat().st_mode & 0o777 == 0o600
    clear = eidas_pki.qseal.key.read_text()
    text = sealed.read_text()
    assert text.startswith(eidas.SEALED_BEGIN)
    assert not any(line in text for line in clear.splitlines()[1:-1])
    again = CliRunner().invoke(
        cli, ["eidas", "seal", str(eidas_pki.qseal.key), "--out", str(sealed)]
    )
    assert again.exit_code == 2  # never over an existing file

    db = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"
    common = {"xs2a_qseal_cert_file": eidas_pki.qseal.cert, "xs2a_qseal_key_file": sealed}
    (found,) = eidas.check_catalogue(
        make_settings(tmp_path, db, kek=kek, **common), [("s", "xs2a", {})], NOW
    )
    assert found.qseal is not None
    assert found.qseal.certificate == eidas_pki.qseal.certificate

    locked = tmp_path / "qwac.sealed"
    monkeypatch.setenv("BANKHUB_XS2A_QWAC_KEY_PASSPHRASE", PASSPHRASE)
    sealed_too = CliRunner().invoke(
        cli, ["eidas", "seal", str(eidas_pki.qwac_encrypted.key), "--out", str(locked)]
    )
    assert sealed_too.exit_code == 0, sealed_too.output
    settings = make_settings(
        tmp_path,
        db,
        kek=kek,
        xs2a_qwac_cert_file=eidas_pki.qwac_encrypted.cert,
        xs2a_qwac_key_file=locked,
        xs2a_qwac_key_passphrase=PASSPHRASE,
    )
    eidas.check_catalogue(settings, [], NOW)

    with pytest.raises(eidas.EidasError) as refused:
        eidas.check_catalogue(make_settings(tmp_path, db, kek=other_kek, **common), [], NOW)
    assert f"BANKHUB_XS2A_QSEAL_KEY_FILE {sealed}" in str(refused.value)
    assert "sealed under the key-encryption key local-" in str(refused.value)


async def test_behind_a_qwac_the_bank_is_checked_against_the_operators_ca_bundle(
    eidas_pki: EidasPki, tmp_path: Path
) -> None:
    """test_behind_a_qwac_the_bank_is_checked_against_the_operators_ca_bundle — S31, eIDAS:
    the client made to present the QWAC trusts what the shared client trusts
    (``BANKHUB_CA_BUNDLE``), not some other store: with the bank's CA there the consent goes
    through; without it the bank's server certificate is refused."""
    with running_tls(PeerBank(), eidas_pki) as (bank, checks):
        service = _service(bank, eidas_pki)
        service.params.pop("ca_bundle")
        outcomes = []
        for bundle in (eidas_pki.bank_ca, eidas_pki.tpp_ca):
            settings = make_settings(
                tmp_path,
                f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
                ca_bundle=bundle,
                **_operator(eidas_pki, eidas_pki.qwac, eidas_pki.qseal),
            )
            hub = Hub.build(
                settings, catalogue=Catalogue([service], tmp_path / "media"), clock=FakeClock()
            )
            try:
                run = hub.engine.build(service, return_url=RETURN_URL, psu_ip_address=PSU_IP)
                try:
                    await run.connector.authenticate({})
                except (NeedsRedirect, ProviderUnavailable) as outcome:
                    outcomes.append(outcome)
            finally:
                await hub.close()
    trusted, untrusted = outcomes
    assert isinstance(trusted, NeedsRedirect)
    assert isinstance(untrusted, ProviderUnavailable)
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.message
    assert len(checks.verdicts) == 1
