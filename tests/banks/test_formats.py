"""Reading bank registries: the real xs2a-adapter file's faults, and bankhub's JSON/YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bankhub.banks.formats import (
    RegistryFileError,
    bank_file_schema,
    read_bankhub,
    read_registry,
    read_registry_file,
)
from bankhub.connectors.ukob import UkobParams

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "registry"
XS2A_ADAPTER = CORPUS / "xs2a-adapter-aspsp-config.csv"

#: every row of the corpus file that is refused, and why (checked by hand against the file)
CORPUS_REFUSALS = {
    53: "BIC 'DEUTDE' is not a valid BIC",
    805: "BIC 'MARKDEF' is not a valid BIC",
    1050: "BIC 'ISBKDEF' is not a valid BIC",
    1319: "BIC 'ADORSYS' is not a valid BIC",
    1461: "URL 'https://simulator-xs2a.db.com/{Service Group}/DE/SB-DB' holds a placeholder",
    **{n: f"duplicate of line {n - 3}" for n in (899, 900, 901)},
    **{n: f"duplicate of line {n - 6}" for n in (902, 903, 904)},
    1365: "duplicate of line 1363",
    1366: "duplicate of line 1364",
    1607: "duplicate of line 1605",
    1608: "duplicate of line 1606",
    1611: "duplicate of line 1609",
    1612: "duplicate of line 1610",
    1746: "duplicate of line 1744",
    1747: "duplicate of line 1745",
    1987: "duplicate of line 1986",
}


def test_the_xs2a_adapter_corpus_file_each_fault_handled() -> None:
    registry = read_registry_file(XS2A_ADAPTER)
    assert registry.format == "xs2a-adapter"
    assert registry.rows == 1994
    assert len(registry.records) == 1974
    refused = {r.line: r.reason for r in registry.refusals}
    assert set(refused) == set(CORPUS_REFUSALS)
    for line, reason in CORPUS_REFUSALS.items():
        assert refused[line].startswith(reason), (line, refused[line])
    by_line = {r.line: r for r in registry.records}
    # quoted names with commas are one column
    assert by_line[15].name == "BNP Paribas Germany, Consorsbank"
    # an empty BLZ is kept: the registry's id is the bank's identity, not BIC and BLZ
    empty = [r for r in registry.records if r.blz is None]
    assert len(empty) == 128
    assert by_line[6].key == "xs2a-adapter:457089d0-f926-4786-b345-92b7e16cafda"
    # the 7th column is the OAuth IdP URL, sometimes two of them
    assert by_line[1287].params["idp_urls"] == ["https://api.dkb.de/psd2sandbox"]
    assert by_line[1192].params["idp_urls"] == [
        "https://idp-mock.sparda-n.de.schulung.sparda.de",
        "https://idp-mock.sparda.de",
    ]
    # the country comes from the BIC: an Austrian branch in a German registry
    assert by_line[1820].country_code == "AT"
    assert by_line[1820].blz is None
    # one BIC and BLZ, two institutions at different URLs: both kept
    assert by_line[1605].name == "Frankfurter Sparkasse"
    assert by_line[1609].name == "1822direkt"
    assert by_line[1605].key != by_line[1609].key
    # BICs schwifty's registry does not know (merged banks) are kept, with a note
    assert any("not in schwifty's bank registry" in n.reason for n in registry.notes)
    assert all(
        r.connector == "xs2a" and r.params["base_url"].startswith("https://")
        for r in registry.records
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            "0b0e4b7e-0c2e-4a3e-9a59-2f9d1f4c1d11,Bank,GENODEF1S06,https://x.example,"
            "https://idp.example,76090500",
            "columns shifted: the adapter id column holds a URL",
        ),
        (
            "0b0e4b7e-0c2e-4a3e-9a59-2f9d1f4c1d11,Bank,GENODEF1S06,fiducia-adapter,76090500",
            "has 5 columns",
        ),
        (
            "0b0e4b7e-0c2e-4a3e-9a59-2f9d1f4c1d11,Bank,GENODEF1S06,https://x.example,"
            "fiducia-adapter,fiducia-adapter",
            "columns shifted: the BLZ column holds an adapter id",
        ),
        (
            "not-a-uuid,Bank,GENODEF1S06,https://x.example,fiducia-adapter,76090500",
            "id 'not-a-uuid' is not a UUID",
        ),
        (
            "0b0e4b7e-0c2e-4a3e-9a59-2f9d1f4c1d11,Bank,GENODEF1S06,http://x.example,"
            "fiducia-adapter,76090500",
            "URL 'http://x.example' must be an https:// URL",
        ),
        (
            "0b0e4b7e-0c2e-4a3e-9a59-2f9d1f4c1d11,Bank,GENODEF1S06,https://x.example,"
            "fiducia-adapter,7609050",
            "BLZ '7609050' is not a DE bank code (8 digits)",
        ),
        (
            "0b0e4b7e-0c2e-4a3e-9a59-2f9d1f4c1d11, ,GENODEF1S06,https://x.example,"
            "fiducia-adapter,76090500",
            "name is empty",
        ),
        (
            "0b0e4b7e-0c2e-4a3e-9a59-2f9d1f4c1d11,Bank,GENODEF1S06,https://x.example,"
            "fiducia-adapter,76090500,https://idp.example,SMS",
            "SCA approach 'SMS' is not one of",
        ),
    ],
)
def test_a_bad_xs2a_adapter_row_is_refused_with_its_line_and_reason(row: str, reason: str) -> None:
    good = "1edbdcff-ce4a-42ad-a0a5-dd4767ae0443,Sparkasse Vorpommern,NOLADE21GRW,https://x.example,sparkasse-adapter,15050500"
    registry = read_registry(f"{good}\n\n{row}\n".encode(), name="r.csv")
    assert len(registry.records) == 1
    assert [(r.line, r.reason[: len(reason)]) for r in registry.refusals] == [(3, reason)]


def test_a_broken_csv_quote_refuses_the_file_with_its_line() -> None:
    text = (
        "1edbdcff-ce4a-42ad-a0a5-dd4767ae0443,Sparkasse,NOLADE21GRW,https://x.example,a-adapter,15050500\n"
        '2edbdcff-ce4a-42ad-a0a5-dd4767ae0443,"Bank "quoted" badly,NOLADE21GRW\n'
    )
    with pytest.raises(RegistryFileError) as caught:
        read_registry(text.encode(), name="r.csv")
    assert caught.value.line == 2


def test_a_file_that_is_not_utf8_is_refused_naming_the_line() -> None:
    data = b"a,b\n" + "Sparkasse Gö".encode("latin-1")
    with pytest.raises(RegistryFileError, match="line 2: not UTF-8"):
        read_registry(data, name="r.csv")


BANKHUB_JSON = """{
  "version": 1,
  "banks": [
    {
      "name": "Musterbank Live",
      "bic": "WELADED1BUB",
      "blz": "46051240",
      "base_url": "https://xs2a.musterbank.example/psd2",
      "sca_approaches": ["REDIRECT", "DECOUPLED"],
      "consent_model": "global",
      "booking_status": "booked",
      "history_days": 365,
      "logo_url": "https://cdn.musterbank.example/logo.png",
      "color": {"primary": "ff0000", "secondary": "FFFFFF"}
    },
    {
      "name": "No BIC Bank",
      "bic": "XYZ",
      "base_url": "https://a.example"
    },
    {
      "key": "nordbank",
      "name": "Nordbank",
      "bic": "DNBANOKKXXX",
      "country": "NO",
      "base_url": "https://psd2.nordbank.example",
      "psu_id_required": true
    }
  ]
}
"""


def test_the_bankhub_json_format_maps_to_connector_params() -> None:
    registry = read_registry(BANKHUB_JSON.encode(), name="banks.json")
    assert registry.rows == 3
    first, nordbank = registry.records
    assert first.key == "bankhub:WELADED1BUB/46051240"
    assert first.line == 4
    assert first.country_code == "DE"
    assert first.params == {
        "base_url": "https://xs2a.musterbank.example/psd2",
        "name": "Musterbank Live",
        "sca_approaches": ["REDIRECT", "DECOUPLED"],
        "preferred_sca_approach": "REDIRECT",
        "all_psd2": True,
        "booking_status": "booked",
        "consent_days": 90,
        "frequency_per_day": 4,
        "psu_id_required": False,
        "history_days": 365,
    }
    assert first.logo_url == "https://cdn.musterbank.example/logo.png"
    assert (first.color_primary, first.color_secondary) == ("FF0000", "FFFFFF")
    assert nordbank.line == 21
    assert nordbank.key == "bankhub:nordbank"
    assert nordbank.country_code == "NO"
    assert nordbank.params["psu_id_required"] is True
    [refusal] = registry.refusals
    assert refusal.line == 16
    assert refusal.reason.startswith("bank #2: BIC 'XYZ' is not a valid BIC")


def test_the_same_file_in_yaml_reads_the_same_and_norway_stays_norway() -> None:
    document = json.loads(BANKHUB_JSON)
    lines = ["version: 1", "banks:"]
    for bank in document["banks"]:
        first = True
        for key, value in bank.items():
            lead = "  - " if first else "    "
            shown = value if key == "country" else json.dumps(value)
            lines.append(f"{lead}{key}: {shown}")
            first = False
    text = "\n".join(lines) + "\n"
    assert "country: NO\n" in text  # unquoted: YAML 1.1 would read false
    registry = read_registry(text.encode(), name="banks.yaml")
    from_json = read_registry(BANKHUB_JSON.encode(), name="banks.json")
    assert [(r.key, r.params, r.country_code) for r in registry.records] == [
        (r.key, r.params, r.country_code) for r in from_json.records
    ]
    assert [r.line for r in registry.records] == [3, 16]
    assert [r.line for r in registry.refusals] == [13]


@pytest.mark.parametrize(
    ("name", "text", "line", "message"),
    [
        ("banks.json", '{\n  "banks": [\n    {"name": "A",}\n  ]\n}\n', 3, "not JSON"),
        ("banks.json", '{\n  "banks": [\n', 3, "not JSON"),
        ("banks.yaml", "banks:\n  - name: A\n    bic: [unclosed\n  - x\n", 5, "not YAML"),
        ("banks.yaml", "banks:\n  - name: A\n   bic: WELADED1BUB\n", 3, "not YAML"),
        ("banks.json", '\n["not", "an object"]\n', 1, "not a registry"),
        ("banks.json", '{\n  "banks": {}\n}', 1, "not a registry: Expected `array`"),
        ("banks.yaml", "version: 2\nbanks: []\n", 1, "not a registry"),
        ("banks.yaml", "banks: []\nextra: 1\n", 1, "not a registry: Object contains unknown field"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_line(
    name: str, text: str, line: int, message: str
) -> None:
    with pytest.raises(RegistryFileError) as caught:
        read_registry(text.encode(), name=name)
    assert caught.value.line == line
    assert caught.value.reason.startswith(message), caught.value.reason
    assert str(caught.value).startswith(f"line {line}: ")


def test_an_unclosed_yaml_bracket_names_where_it_was_opened() -> None:
    with pytest.raises(RegistryFileError) as caught:
        read_registry(b"banks:\n  - name: A\n    bic: [unclosed\n  - x\n", name="b.yml")
    assert "while parsing a flow sequence on line 3" in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (
            {"name": "A", "bic": "WELADED1BUB", "base_url": "https://a.example", "colour": 1},
            "Object contains unknown field `colour`",
        ),
        (
            {"name": "A", "bic": "WELADED1BUB", "base_url": "https://a.example", "history_days": 0},
            "Expected `int` >= 1 - at `history_days`",
        ),
        (
            {
                "name": "A",
                "bic": "WELADED1BUB",
                "base_url": "https://a.example",
                "sca_approaches": ["REDIRECT"],
                "preferred_sca_approach": "EMBEDDED",
            },
            "preferred_sca_approach EMBEDDED is not one of sca_approaches",
        ),
        (
            {"name": "A", "bic": "WELADED1BUB", "blz": 46051240, "base_url": "https://a.example"},
            "blz must be a string",
        ),
        (
            {"name": "A", "bic": "WELADED1BUB", "country": "US", "base_url": "https://a.example"},
            "country 'US' is not a country with IBANs",
        ),
        (
            {
                "name": "A",
                "bic": "WELADED1BUB",
                "base_url": "https://a.example",
                "logo_url": "javascript:alert(1)",
            },
            "logo_url 'javascript:alert(1)' must be an https:// URL",
        ),
        (
            {"name": "A", "bic": "WELADED1BUB", "base_url": "https://user:pw@a.example"},
            "base_url must not carry credentials",
        ),
        (
            {
                "name": "A",
                "bic": "WELADED1BUB",
                "base_url": "https://a.example",
                "connector": "fints",
            },
            "Invalid enum value 'fints' - at `connector`",
        ),
    ],
)
def test_a_bad_bankhub_entry_is_refused_with_its_reason(
    entry: dict[str, object], reason: str
) -> None:
    text = json.dumps({"banks": [entry]}, indent=2)
    registry = read_registry(text.encode(), name="banks.json")
    assert registry.records == []
    [refusal] = registry.refusals
    assert refusal.line == 3
    assert reason in refusal.reason, refusal.reason


def test_two_banks_sharing_bic_and_blz_need_keys_of_their_own() -> None:
    bank = {"name": "A", "bic": "HELADEF1822", "blz": "50050201", "base_url": "https://a.example"}
    text = json.dumps({"banks": [bank, {**bank, "name": "B"}, {**bank, "key": "b"}]}, indent=2)
    registry = read_registry(text.encode(), name="banks.json")
    assert [r.key for r in registry.records] == ["bankhub:HELADEF1822/50050201", "bankhub:b"]
    [refusal] = registry.refusals
    assert "already used on line 3" in refusal.reason
    assert "give each bank sharing a BIC and BLZ its own key" in refusal.reason


def test_the_documented_schema_is_the_structs() -> None:
    schema = bank_file_schema()
    entry = schema["$defs"]["BankEntry"]
    assert set(entry["required"]) == {"name", "bic", "base_url"}
    assert {"sca_approaches", "consent_model", "booking_status", "history_days", "logo_url"} <= set(
        entry["properties"]
    )
    assert schema["properties"]["banks"]["items"] == {"$ref": "#/$defs/BankEntry"}
    documented = (Path(__file__).resolve().parents[2] / "docs" / "banks.md").read_text()
    assert json.dumps(schema, indent=2, sort_keys=True) in documented


def test_every_imported_bank_is_a_valid_xs2a_institution() -> None:
    """What the registry writes is what the XS2A connector reads: each bank's parameters (as
    the sync engine hands them over) build the connector's institution without an error."""
    from bankhub.catalogue import imported_service
    from bankhub.connectors.xs2a.params import Xs2aParams

    corpus = read_registry_file(XS2A_ADAPTER).records
    own = read_registry(BANKHUB_JSON.encode(), name="banks.json").records
    for number, record in enumerate([*corpus, *own], start=1001):
        service = imported_service(
            id=number,
            name=record.name,
            country_code=record.country_code,
            connector=record.connector,
            params={**record.params, "bic": record.bic, "blz": record.blz},
            bic=record.bic,
            blz=record.blz,
            color_primary=record.color_primary,
            color_secondary=record.color_secondary,
            logo_url=record.logo_url,
            enabled=True,
        )
        params = Xs2aParams.from_institution(
            {**service.params, "slug": service.slug, "name": service.name}
        )
        assert params.base_url == record.params["base_url"]
    musterbank = Xs2aParams.from_institution(own[0].params)
    assert musterbank.all_psd2
    assert musterbank.booking_status == "booked"
    assert musterbank.history_days == 365
    assert [a.value for a in musterbank.sca_approaches] == ["REDIRECT", "DECOUPLED"]


def test_a_uk_open_banking_bank_is_read_with_its_parameters() -> None:
    """``connector: ukob`` entries carry what the UK connector needs, checked as it reads them;
    one without its client registration, or UK fields on an XS2A bank, is refused by line."""
    text = json.dumps(
        {
            "version": 1,
            "banks": [
                {
                    "name": "NatWest",
                    "bic": "NWBKGB2L",
                    "connector": "ukob",
                    "base_url": "https://ob.natwest.example/open-banking/v3.1/aisp",
                    "well_known_url": "https://auth.natwest.example/.well-known/openid-configuration",
                    "client_id": "bankhub-client",
                    "signing_key_id": "kid-1",
                    "financial_id": "0015800000jfwxXAAQ",
                    "history_days": 365,
                    "qseal_cert_file": "/etc/bankhub/obseal.pem",
                    "qseal_key_file": "/etc/bankhub/obseal.key",
                },
                {
                    "key": "no-client",
                    "name": "Barclays",
                    "bic": "BARCGB22",
                    "connector": "ukob",
                    "base_url": "https://ob.barclays.example/open-banking/v3.1/aisp",
                    "well_known_url": "https://auth.barclays.example/.well-known/openid-configuration",
                    "signing_key_id": "kid-1",
                },
                {
                    "name": "Musterbank",
                    "bic": "WELADED1BUB",
                    "base_url": "https://xs2a.musterbank.example/psd2",
                    "client_id": "stray",
                },
            ],
        }
    )
    registry = read_bankhub(text, yaml_text=False)
    (record,) = registry.records
    assert record.connector == "ukob"
    assert record.name == "NatWest"
    assert record.params == {
        "base_url": "https://ob.natwest.example/open-banking/v3.1/aisp",
        "name": "NatWest",
        "consent_days": 90,
        "history_days": 365,
        "qseal_cert_file": "/etc/bankhub/obseal.pem",
        "qseal_key_file": "/etc/bankhub/obseal.key",
        "well_known_url": "https://auth.natwest.example/.well-known/openid-configuration",
        "client_id": "bankhub-client",
        "signing_key_id": "kid-1",
        "financial_id": "0015800000jfwxXAAQ",
    }
    assert UkobParams.from_institution(record.params).client_id == "bankhub-client"
    reasons = [r.reason for r in registry.refusals]
    assert len(reasons) == 2
    assert "client_id is required for connector: ukob" in reasons[0]
    assert "are for connector: ukob" in reasons[1]
