"""The shipped service catalogue: sandbox banks in several countries, with their media."""

from __future__ import annotations

import json
import struct
from importlib.resources import files
from pathlib import Path

from bankhub.catalogue import COVER_SIZES, default_catalogue, load_catalogue
from bankhub.catalogue.drawing import COVER_SIZES as DRAWN_SIZES
from bankhub.catalogue.drawing import LOGO_SIZE, initials

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_catalogue_loads_with_banks_in_several_countries() -> None:
    catalogue = load_catalogue()
    services = catalogue.services
    assert len(services) >= 8
    assert len({s.country_code for s in services}) >= 5
    assert [s.id for s in services] == list(range(1, len(services) + 1))
    assert len({s.slug for s in services}) == len(services)
    sandboxes = [s for s in services if s.connector == "sandbox"]
    assert [s.id for s in sandboxes] == list(range(1, 11))  # ids the seed's apps rely on
    currencies = {s.params["currency"] for s in sandboxes}
    assert {"VND", "EUR", "USD", "GBP"} <= currencies
    statement = [s for s in services if s.type == "statement"]
    assert [s.connector for s in statement] == ["statement"]
    examples = [s for s in services if s.connector not in ("sandbox", "statement")]
    assert {s.connector for s in examples} == {"xs2a", "fints", "simplefin", "ofx"}
    for service in examples:
        assert "(example)" in service.name
        hosts = [v for k, v in service.params.items() if k in ("base_url", "fints_url", "url")]
        assert all(".example/" in h for h in hosts), service.slug
    for service in sandboxes:
        assert service.type == "bank"
        assert service.provider == "bankhub"
        assert service.params["slug"] == service.slug
        assert service.params["country_code"] == service.country_code
        assert isinstance(service.params["seed"], int)
        assert len(service.color_primary) == 6
        int(service.color_primary, 16)
        int(service.color_secondary, 16)
    assert any(s.call_to_action for s in services)
    assert default_catalogue().get(1) is not None


def test_catalogue_file_is_plain_json_with_the_seed_fields() -> None:
    entries = json.loads(files("bankhub.catalogue").joinpath("services.json").read_text("utf-8"))
    for entry in entries:
        assert {"id", "name", "provider", "type", "country_code", "has_balance", "color"} <= set(
            entry
        )
        assert "call_to_action" in entry


def test_every_service_has_its_media_in_the_right_sizes() -> None:
    catalogue = default_catalogue()
    assert DRAWN_SIZES == {"small": (320, 120), "medium": (640, 240), "large": (1280, 480)}
    for service in catalogue.services:
        logo = catalogue.media_file(service.logo_file_name)
        assert logo is not None
        assert png_size(logo.read_bytes()) == LOGO_SIZE
        for size in COVER_SIZES:
            cover = catalogue.media_file(f"{service.slug}-cover-{size}.png")
            assert cover is not None
            data = cover.read_bytes()
            assert png_size(data) == DRAWN_SIZES[size]
            assert len(data) < 20_000
    assert catalogue.media_file("../services.json") is None


def test_initials_skip_the_sandbox_prefix() -> None:
    assert initials("Sandbox Bank Việt Nam") == "BV"
    assert initials("Sandbox Crédit Parisien") == "CP"
    assert initials("Sandbox") == "SB"


def test_an_operator_catalogue_file_replaces_the_built_in_one(tmp_path: Path) -> None:
    from bankhub.config import Environment, Settings
    from bankhub.hub import Hub

    entry = json.loads(
        (Path(str(files("bankhub.catalogue").joinpath("services.json")))).read_text()
    )[0]
    entry = {**entry, "id": 500, "name": "Operator Bank"}
    custom = tmp_path / "services.json"
    custom.write_text(json.dumps([entry]))
    settings = Settings(
        env=Environment.TEST, data_dir=tmp_path, catalogue_file=custom, secret_key="k" * 40
    )
    hub = Hub.build(settings)
    assert [s.name for s in hub.catalogue.services] == ["Operator Bank"]


def test_the_hand_written_example_institutions_are_dev_only(tmp_path: Path) -> None:
    """Their hosts do not exist: outside dev they would be banks that can never connect."""
    from bankhub.config import Environment, Settings
    from bankhub.hub import Hub

    everything = {s.slug for s in load_catalogue().services}
    production = load_catalogue(dev=False).services
    assert everything - {s.slug for s in production} == {
        "example-sparkasse-musterstadt-de",
        "example-volksbank-musterstadt-de",
        "example-musterbank-fints-de",
        "example-ofx-direct-bank-us",
    }
    assert not [s for s in production if s.connector in ("xs2a", "fints", "ofx")]
    assert [s.id for s in production if s.connector == "sandbox"] == list(range(1, 11))
    settings = Settings(
        env=Environment.PRODUCTION,
        data_dir=tmp_path,
        secret_key="Gq7tWm2Zr9vXc4Lp8Hs1Yd6Kf3Nb5Jw0Ue",
        public_url="https://bankhub.example",
        kek="q" * 43,
    )
    hub = Hub.build(settings)
    assert hub.catalogue.get(12) is None
    assert hub.catalogue.get(1) is not None
    assert {s.id for s in hub.catalogue.listed()} == {s.id for s in production}
