"""Imported banks in the database and in the catalogue partners read (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from bankhub.banks import services
from bankhub.banks.live import BanksFileError, import_file
from bankhub.banks.models import Bank
from bankhub.hub import Hub
from tests.api.connect_client import CALLBACK, create_customer
from tests.banks.test_formats import XS2A_ADAPTER
from tests.conftest import BASE_URL, FakeClock, Harness, make_settings, upgrade_now
from tests.seed_shapes import SERVICE_KEYS

BANKS: dict[str, Any] = {
    "version": 1,
    "banks": [
        {
            "name": "Sparkasse Burbach-Neunkirchen",
            "bic": "WELADED1BUB",
            "blz": "46051240",
            "base_url": "https://xs2a.sparkasse-bn.example/psd2",
            "logo_url": "https://cdn.sparkasse-bn.example/logo.png",
        },
        {
            "name": "Volksbank Schwarzwald Baar Hegau",
            "bic": "GENODE61VS1",
            "blz": "69490000",
            "base_url": "https://xs2a.vb-sbh.example/psd2",
            "sca_approaches": ["DECOUPLED"],
        },
        {
            "name": "Landessparkasse zu Oldenburg",
            "bic": "SLZODE22XXX",
            "blz": "28050100",
            "base_url": "https://xs2a.lzo.example/psd2",
        },
    ],
}


class Ticks:
    """An injected monotonic clock for the catalogue's reload interval."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _file(tmp_path: Path, document: object, name: str = "banks.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=2))
    return path


async def _import(h: Harness, path: Path) -> services.ImportOutcome:
    _, outcome = await import_file(h.hub.db, h.clock, h.hub.catalogue, path)
    return outcome


async def _bank_count(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(Bank))).scalar_one())


async def _version(h: Harness) -> str | None:
    async with h.hub.db.transaction() as session:
        return await services.current_version(session)


async def _switch(h: Harness, ids: list[int] | None, enabled: bool) -> list[int]:
    async with h.hub.db.transaction(write=True) as session:
        return await services.set_enabled(session, h.clock, ids, enabled)


async def test_the_corpus_file_imports_once_and_a_second_import_changes_nothing(
    harness: Harness,
) -> None:
    h = harness
    first = await _import(h, XS2A_ADAPTER)
    assert len(first.added) == 1974
    assert first.added == list(range(1001, 1001 + 1974))
    assert (first.updated, first.unchanged) == ([], 0)
    assert await _bank_count(h) == 1974
    assert await _version(h) == "1"
    again = await _import(h, XS2A_ADAPTER)
    assert (again.added, again.updated, again.unchanged) == ([], [], 1974)
    assert await _version(h) == "1"  # nothing changed: no process reloads
    async with h.hub.db.transaction() as session:
        banks = await services.list_banks(session)
    assert not any(b.enabled for b in banks)  # imported banks start disabled
    by_key = {b.key: b for b in banks}
    dkb = by_key["xs2a-adapter:335562a2-26e2-4105-b31e-08de285234e0"]
    assert (dkb.name, dkb.bic, dkb.blz, dkb.country_code) == (
        "DKB",
        "BYLADEM1001",
        "12030000",
        "DE",
    )
    assert dkb.params["idp_urls"] == ["https://api.dkb.de/psd2sandbox"]


async def test_a_changed_row_updates_the_bank_in_place_keeping_its_id(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    lines = XS2A_ADAPTER.read_text(encoding="utf-8").splitlines(keepends=True)
    head = tmp_path / "head.csv"
    head.write_text("".join(lines[:40]), encoding="utf-8")
    first = await _import(h, head)
    assert len(first.added) == 40
    async with h.hub.db.transaction() as session:
        before = {b.key: b.id for b in await services.list_banks(session)}
    vorpommern = "xs2a-adapter:1edbdcff-ce4a-42ad-a0a5-dd4767ae0443"
    await _switch(h, [before[vorpommern]], True)
    assert lines[1].startswith("1edbdcff")
    lines[1] = (
        lines[1]
        .replace("Sparkasse Vorpommern", "Sparkasse Vorpommern (neu)")
        .replace(
            "https://xs2a-sandbox.f-i-apim.de:8444/fixs2a-env/xs2a-api/12345678",
            "https://xs2a.sparkasse-vorpommern.example/psd2",
        )
    )
    # a new bank at the end, and the rows in another order: ids follow keys, not lines
    changed = tmp_path / "changed.csv"
    changed.write_text("".join(reversed(lines[:41])), encoding="utf-8")
    second = await _import(h, changed)
    assert second.updated == [before[vorpommern]]
    assert second.unchanged == 39
    assert second.added == [max(before.values()) + 1]
    async with h.hub.db.transaction() as session:
        after = {b.key: b for b in await services.list_banks(session)}
    assert {key: after[key].id for key in before} == before
    bank = after[vorpommern]
    assert bank.name == "Sparkasse Vorpommern (neu)"
    assert bank.params["base_url"] == "https://xs2a.sparkasse-vorpommern.example/psd2"
    assert bank.enabled  # the operator's switch survives an update
    assert await _version(h) == "3"


async def test_service_json_shows_enabled_banks_only_in_the_seed_shape(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    ticks = Ticks()
    h.hub.live.monotonic = ticks
    h.hub.live.invalidate()
    shipped = (await h.client.get("/service.json")).json()
    added = (await _import(h, _file(tmp_path, BANKS))).added
    ticks.now += h.hub.settings.catalogue_refresh_seconds
    assert (await h.client.get("/service.json")).json() == shipped  # imported, not enabled
    await _switch(h, added[:2], True)
    # until the interval has passed, this process serves what it loaded
    assert (await h.client.get("/service.json")).json() == shipped
    ticks.now += h.hub.settings.catalogue_refresh_seconds
    public = (await h.client.get("/service.json")).json()
    assert [s["id"] for s in public] == [s["id"] for s in shipped] + added[:2]
    first, second = public[-2:]
    assert set(first) == SERVICE_KEYS
    assert first == {
        "id": added[0],
        "name": "Sparkasse Burbach-Neunkirchen",
        "provider": "bankhub",
        "media_path": f"{BASE_URL}/media/services/",
        "cover_file_name": f"bank-{added[0]}-cover.png",
        "logo_file_name": f"bank-{added[0]}-logo.png",
        "color": {"primary": "1F3A5F", "secondary": "FFFFFF"},
        "type": "bank",
        "country_code": "DE",
        "has_balance": True,
        "call_to_action": None,
    }
    # media come from bankhub: until a logo is fetched from its URL (tests/banks/test_logos.py)
    # it is drawn, like the covers and a logo without a URL; never a redirect to the logo host
    logo = await h.client.get(f"/media/services/{first['logo_file_name']}")
    assert logo.status_code == 200
    assert "location" not in logo.headers
    assert logo.content.startswith(b"\x89PNG\r\n\x1a\n")
    drawn = await h.client.get(f"/media/services/{second['logo_file_name']}")
    assert drawn.status_code == 200
    assert drawn.content.startswith(b"\x89PNG\r\n\x1a\n")
    for size in ("small", "medium", "large"):
        cover = await h.client.get(f"/media/services/bank-{added[0]}-cover-{size}.png")
        assert cover.status_code == 200
        assert cover.headers["content-type"] == "image/png"
    hidden = await h.client.get(f"/media/services/bank-{added[2]}-logo.png")
    assert hidden.status_code == 200  # media of a disabled bank are not secret
    missing = await h.client.get("/media/services/bank-99999-logo.png")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFound"
    listed = (await h.client.get("/v2/service", headers=h.headers())).json()["data"]
    assert [s["id"] for s in listed][-2:] == added[:2]
    assert added[2] not in {s["id"] for s in listed}


async def test_only_an_enabled_bank_can_be_picked_for_a_token(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    added = (await _import(h, _file(tmp_path, BANKS))).added
    h.hub.live.invalidate()
    customer = await create_customer(h)
    body = {"customer_id": customer, "service_id": added[0], "callback_url": CALLBACK}
    refused = await h.client.post("/v2/token", json=body, headers=h.headers())
    assert refused.status_code == 404
    assert refused.json()["error"] == "ServiceNotFound"
    assert set(refused.json()) == {"error", "message", "extra"}
    await _switch(h, [added[0]], True)
    h.hub.live.invalidate()
    issued = await h.client.post("/v2/token", json=body, headers=h.headers())
    assert issued.status_code == 200, issued.text
    await _switch(h, None, False)
    h.hub.live.invalidate()
    # a link issued while the bank was enabled does not open once it is disabled
    link = issued.json()["data"]["connect_url"]
    opened = await h.client.get(link[link.index("/v2/connect") :])
    assert opened.status_code == 404
    assert "ServiceNotFound" in opened.text
    again = await h.client.post("/v2/token", json=body, headers=h.headers())
    assert again.json()["error"] == "ServiceNotFound"
    # a disabled bank stays known to the sync engine: its logins keep refreshing
    assert h.hub.engine.catalogue.get(added[0]) is not None


@pytest.mark.parametrize(
    ("q", "names"),
    [
        (
            "sparkasse",
            [
                "Sparkasse Musterstadt (example)",
                "Sparkasse Burbach-Neunkirchen",
                "Landessparkasse zu Oldenburg",
            ],
        ),
        ("VOLKSBANK schwarzwald", ["Volksbank Schwarzwald Baar Hegau"]),
        ("WELADED1", ["Sparkasse Burbach-Neunkirchen"]),
        ("slzode22xxx", ["Landessparkasse zu Oldenburg"]),
        ("69490000", ["Volksbank Schwarzwald Baar Hegau"]),
        ("Sandbox Bank Việt", ["Sandbox Bank Việt Nam"]),
        ("no such bank", []),
    ],
)
async def test_the_catalogue_is_searchable_by_name_bic_and_blz(
    harness: Harness, tmp_path: Path, q: str, names: list[str]
) -> None:
    h = harness
    await _import(h, _file(tmp_path, BANKS))
    await _switch(h, None, True)
    h.hub.live.invalidate()
    public = await h.client.get("/service.json", params={"q": q})
    assert public.status_code == 200
    assert [s["name"] for s in public.json()] == names
    listed = await h.client.get("/v2/service", params={"q": q}, headers=h.headers())
    assert [s["name"] for s in listed.json()["data"]] == names


async def test_a_search_too_long_is_a_bad_request(harness: Harness) -> None:
    response = await harness.client.get("/service.json", params={"q": "x" * 101})
    assert response.status_code == 400
    assert response.json()["error"] == "BadRequest"
    assert set(response.json()) == {"error", "message", "extra"}


async def test_another_process_sees_a_change_without_restart(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    other = Hub.build(h.hub.settings, clock=h.clock)
    ticks = Ticks()
    other.live.monotonic = ticks
    other.live.invalidate()
    try:
        await other.ready()
        assert other.catalogue.get(1001) is None
        added = (await _import(h, _file(tmp_path, BANKS))).added
        await other.ready()
        assert other.catalogue.get(added[0]) is None  # read at most every few seconds
        ticks.now += other.settings.catalogue_refresh_seconds
        await other.ready()
        service = other.catalogue.get(added[0])
        assert service is not None
        assert not service.listed
        assert service.params["base_url"] == "https://xs2a.sparkasse-bn.example/psd2"
        await _switch(h, [added[0]], True)
        ticks.now += other.settings.catalogue_refresh_seconds
        await other.ready()
        assert [s.id for s in other.catalogue.listed("burbach")] == [added[0]]
        # the two hubs' catalogues are their own, not one shared object
        assert other.catalogue is not h.hub.catalogue
    finally:
        await other.close()


async def test_the_banks_file_setting_is_imported_at_start(
    tmp_path: Path, migrated_database_url: str, clock: FakeClock
) -> None:
    path = _file(tmp_path, BANKS, "banks.json")
    settings = make_settings(tmp_path, migrated_database_url, banks_file=path)
    for _ in range(2):  # every process imports it; the second changes nothing
        hub = Hub.build(settings, clock=clock)
        try:
            await hub.ready()
            imported = [s for s in hub.catalogue.services if s.imported]
            assert [s.name for s in imported] == [b["name"] for b in BANKS["banks"]]
            assert [s.id for s in imported] == [1001, 1002, 1003]
        finally:
            await hub.close()


async def test_a_malformed_banks_file_stops_start_up_naming_file_and_line(
    tmp_path: Path, migrated_database_url: str, clock: FakeClock
) -> None:
    path = tmp_path / "banks.yaml"
    path.write_text("banks:\n  - name: A\n    bic: WELADED1BUB\n   base_url: x\n")
    settings = make_settings(tmp_path, migrated_database_url, banks_file=path)
    hub = Hub.build(settings, clock=clock)
    try:
        with pytest.raises(BanksFileError) as caught:
            await hub.ready()
        assert str(caught.value).startswith(f"BANKHUB_BANKS_FILE {path}: line 4: not YAML")
        async with hub.db.transaction() as session:
            assert await services.list_banks(session) == []
    finally:
        await hub.close()


@pytest.mark.postgres
async def test_an_import_waits_for_one_under_way_and_adds_nothing_twice(
    tmp_path: Path, postgres_url: str, clock: FakeClock
) -> None:
    """The version row is locked first: a second import waits for the first one's commit,
    then finds every bank it stored (no duplicate key, no service id handed out twice)."""
    from bankhub.banks.formats import read_registry_file

    upgrade_now(postgres_url)
    settings = make_settings(tmp_path, postgres_url)
    first, second = Hub.build(settings, clock=clock), Hub.build(settings, clock=clock)
    path = _file(tmp_path, BANKS)
    records = read_registry_file(path).records
    try:
        async with first.db.transaction(write=True) as session:  # an earlier, empty import
            await services.import_records(session, clock, [])
        async with first.db.transaction(write=True) as session:
            held = await services.import_records(session, clock, records)
            waiting = asyncio.ensure_future(import_file(second.db, clock, second.catalogue, path))
            query = text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            # until the second import waits on a lock: it may take a loaded machine some
            # seconds to get there (its hub, the file), so the bound is generous
            deadline = time.monotonic() + 30.0
            # each look in a transaction of its own: PostgreSQL keeps pg_stat_activity as it
            # was at its first read in a transaction, so one long transaction would never see
            # the second import arrive at the lock
            autocommit = first.db.engine.execution_options(isolation_level="AUTOCOMMIT")
            async with autocommit.connect() as watcher:
                while not (await watcher.execute(query)).scalar_one():
                    if waiting.done() or time.monotonic() > deadline:
                        pytest.fail("the second import did not wait for the first")
                    await asyncio.sleep(0.01)
            assert not waiting.done()
        _, outcome = await waiting
    finally:
        await first.close()
        await second.close()
    assert len(held.added) == 3
    assert (outcome.added, outcome.updated, outcome.unchanged) == ([], [], 3)
