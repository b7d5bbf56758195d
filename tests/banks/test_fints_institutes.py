"""The FinTS institute directory as a bank registry: every row with a PIN/TAN URL becomes a
FinTS bank the connect page finds by BLZ or BIC; a row without one is reported, not guessed."""

from __future__ import annotations

import json

import pytest

from bankhub.banks import services
from bankhub.banks.formats import (
    SOURCE_FINTS_INSTITUTES,
    RegistryFileError,
    read_registry,
    read_registry_file,
)
from bankhub.banks.live import import_file
from bankhub.connectors.fints.params import bank_params
from tests.banks.test_formats import CORPUS
from tests.conftest import Harness

DIRECTORY = CORPUS / "fints-institutes.json"


def _row(**fields: object) -> dict[str, object]:
    return {
        "pinTanURL": "https://hbci.postbank.de/banking/hbci.do",
        "number": 1,
        "blz": "10010010",
        "bic": "PBNKDEFF100",
        "name": "Postbank",
        "location": "Berlin",
        **fields,
    }


def _read(*rows: dict[str, object]) -> tuple[list[str], list[tuple[int, str]]]:
    registry = read_registry(json.dumps(list(rows), indent=1).encode(), name="institutes.json")
    assert registry.format == SOURCE_FINTS_INSTITUTES
    return [r.name for r in registry.records], [(r.line, r.reason) for r in registry.refusals]


def test_the_directory_each_row_kept_folded_or_reported() -> None:
    registry = read_registry_file(DIRECTORY)
    assert registry.format == SOURCE_FINTS_INSTITUTES  # a JSON list: told apart by content
    rows = json.loads(DIRECTORY.read_text(encoding="utf-8"))
    assert registry.rows == len(rows) == 4001
    without_url = [r for r in rows if not r.get("pinTanURL")]
    assert len(without_url) == 435
    no_url = [f for f in registry.refusals if "gives no PIN/TAN URL" in f.reason]
    # each row without a URL is reported with its line (unless refused for its BLZ or name
    # first), and no bank is made of it
    assert len(no_url) == 425
    assert all("does not guess" in f.reason for f in no_url)
    assert len(registry.refusals) == 437
    branches = [n for n in registry.notes if n.reason.startswith("a branch of the bank on line")]
    assert len(branches) == 1533
    assert len(registry.records) == 2031 == 4001 - 437 - 1533
    assert {r.connector for r in registry.records} == {"fints"}
    for record in registry.records:
        # the URL is the directory's own for that BLZ, never another row's
        assert any(
            (r.get("pinTanURL") or "").strip() == record.params["fints_url"]
            and r["blz"] == record.blz
            for r in rows
        )
        # and every bank builds the FinTS connector's parameters as the sync engine passes them
        params = bank_params(
            {**record.params, "bic": record.bic, "blz": record.blz}, {"fints_product_id": "X"}
        )
        assert params.url == record.params["fints_url"]
    santander = next(f for f in registry.refusals if "10033300" in f.reason)
    assert santander.line == 13  # the file's own line of that row


def test_a_row_without_a_url_is_reported_not_guessed() -> None:
    names, refused = _read(_row(), _row(number=2, name="Santander Bank", pinTanURL=None))
    assert names == ["Postbank"]
    assert refused == [
        (
            10,
            "BLZ 10010010 (Santander Bank): the directory gives no PIN/TAN URL; bankhub does "
            "not guess one (add the bank with its URL in bankhub's format)",
        )
    ]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"pinTanURL": "http://hbci.example/fints"}, "must be an https:// URL"),
        ({"blz": "1001001"}, "BLZ '1001001' is not a DE bank code (8 digits)"),
        ({"bic": "PBNK"}, "BIC 'PBNK' is not a valid BIC"),
        ({"name": ""}, "name is empty"),
        ({"blz": 10010010}, "blz must be a string"),
    ],
)
def test_a_bad_row_is_refused_with_its_reason(fields: dict[str, object], reason: str) -> None:
    names, refused = _read(_row(**fields))
    assert names == []
    assert len(refused) == 1
    assert reason in refused[0][1]


def test_branches_fold_into_one_bank_and_a_brand_sharing_a_blz_is_its_own() -> None:
    registry = read_registry(
        json.dumps(
            [
                _row(),
                _row(number=2, location="Hamburg"),
                _row(number=3, name="Postbank Filialvertrieb", bic=None),
                _row(number=4, pinTanURL="https://other.example/fints"),
            ]
        ).encode(),
        name="institutes.json",
    )
    assert [(r.name, r.bic, r.blz) for r in registry.records] == [
        ("Postbank", "PBNKDEFF100", "10010010"),
        ("Postbank Filialvertrieb", "", "10010010"),
    ]
    assert len({r.key for r in registry.records}) == 2
    assert [n.reason for n in registry.notes if "branch" in n.reason] == [
        "a branch of the bank on line 1"
    ]
    assert [f.reason for f in registry.refusals] == [
        "BLZ 10010010 (Postbank) has another BIC or URL on line 1"
    ]


def test_a_json_object_is_not_the_directory() -> None:
    with pytest.raises(RegistryFileError, match="must be a JSON list"):
        read_registry(b'{"banks": []}', name="x.json", format=SOURCE_FINTS_INSTITUTES)


@pytest.mark.parametrize(
    ("q", "names"),
    [
        ("10010010", ["Postbank"]),
        ("PBNKDEFF100", ["Postbank"]),
        ("HYVEDEMM488", ["UniCredit Bank - HypoVereinsbank AG"]),
        ("12030000", ["Deutsche Kreditbank Berlin (DKB) AG", "SKG BANK AG / SKG BANK GmbH"]),
    ],
)
async def test_the_imported_directory_is_found_by_blz_and_bic(
    harness: Harness, q: str, names: list[str]
) -> None:
    h = harness
    _, outcome = await import_file(h.hub.db, h.clock, h.hub.catalogue, DIRECTORY)
    assert len(outcome.added) == 2031
    async with h.hub.db.transaction(write=True) as session:
        await services.set_enabled(session, h.clock, None, True)
    h.hub.live.invalidate()
    public = await h.client.get("/service.json", params={"q": q})
    assert public.status_code == 200
    found = public.json()
    assert [s["name"] for s in found] == names
    listed = await h.client.get("/v2/service", params={"q": q}, headers=h.headers())
    assert [s["name"] for s in listed.json()["data"]] == names
