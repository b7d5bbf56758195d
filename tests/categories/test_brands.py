"""Merchant brands from the OpenStreetMap name-suggestion-index: the build script's mapping,
the shipped table's provenance, and how the categorizer uses it (after every keyword rule,
whole words only, debits only, never over an app's own rules)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import sys
import tarfile
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from bankhub import categories
from bankhub.categories import (
    BRANDS_FILE,
    AppRule,
    Brands,
    Category,
    RulesError,
    app_rules,
    brand_key,
    brands,
    categorize,
)

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    """A script of scripts/ (not a package) loaded as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


build = _script("build_merchant_brands")

PACKAGE = "name-suggestion-index"
VERSION = "8.0.20260918"
# its dist.integrity on the registry (npm view name-suggestion-index@8.0.20260918 dist.integrity)
INTEGRITY = (
    "sha512-"
    "g09kxye3aswAETIa//gA56MjonmjcyXCzdIwlDhpBVAwLKXOUJA1QZL5eE4ZRstTFFx9I2o9eARONUXVC72SAw=="
)

# Entries of the npm package name-suggestion-index 8.0.20260918 (BSD-3-Clause), from its
# package/dist/json/nsi.min.json, by key and id, abridged to the fields the build reads
# (displayName, id, locationSet, matchNames, tags, fromTemplate) with their values as the
# package has them.
NSI_ITEMS: dict[str, list[dict[str, Any]]] = {
    # brands/shop/supermarket, ids hofer-83285c, billa-3380c4
    "brands/shop/supermarket": [
        {
            "displayName": "Hofer",
            "id": "hofer-83285c",
            "locationSet": {"include": ["at", "si"]},
            "matchNames": ["hofer österreich"],
            "tags": {
                "brand": "Hofer",
                "brand:wikidata": "Q15815751",
                "name": "Hofer",
                "shop": "supermarket",
            },
        },
        {
            "displayName": "Billa",
            "id": "billa-3380c4",
            "locationSet": {"include": ["at", "bg", "sk"]},
            "tags": {
                "brand": "Billa",
                "brand:wikidata": "Q537781",
                "name": "Billa",
                "shop": "supermarket",
            },
        },
    ],
    # brands/amenity/fuel, id totalenergies-ff2f90
    "brands/amenity/fuel": [
        {
            "displayName": "TotalEnergies",
            "id": "totalenergies-ff2f90",
            "locationSet": {"include": ["001"], "exclude": ["us"]},
            "matchNames": ["station total", "total", "total access", "totalenergies access"],
            "tags": {
                "amenity": "fuel",
                "brand": "TotalEnergies",
                "brand:wikidata": "Q154037",
                "name": "TotalEnergies",
            },
        }
    ],
    # brands/shop/furniture, id ikea-ac4ccb (locationSet abridged to five countries)
    "brands/shop/furniture": [
        {
            "displayName": "IKEA",
            "id": "ikea-ac4ccb",
            "locationSet": {"include": ["at", "de", "fr", "gb", "us"]},
            "tags": {
                "brand": "IKEA",
                "brand:wikidata": "Q54078",
                "name": "IKEA",
                "shop": "furniture",
            },
        }
    ],
    # brands/amenity/fast_food, id ikeabistro-e746e6 (locationSet abridged)
    "brands/amenity/fast_food": [
        {
            "displayName": "IKEA Bistro",
            "id": "ikeabistro-e746e6",
            "locationSet": {"include": ["at", "de", "fr"]},
            "tags": {
                "amenity": "fast_food",
                "brand": "IKEA",
                "brand:wikidata": "Q54078",
                "cuisine": "swedish",
                "name": "IKEA Bistro",
                "takeaway": "yes",
            },
        }
    ],
    # brands/amenity/bank, id erstebank-171b0c: a tag the mapping leaves out (a bank says
    # nothing of what a payment bought)
    "brands/amenity/bank": [
        {
            "displayName": "Erste Bank",
            "id": "erstebank-171b0c",
            "locationSet": {"include": ["at", "hr", "hu", "me", "rs"]},
            "matchNames": ["erste banka"],
            "tags": {
                "amenity": "bank",
                "brand": "Erste Bank",
                "brand:wikidata": "Q696867",
                "name": "Erste Bank",
            },
        }
    ],
    # brands/advertising/totem, id totalenergies-39bce9: a copy of the fuel brand that NSI's
    # build made from a template (a tree the mapping leaves out); were it counted, it would
    # tie with the fuel brand on every name and drop them all
    "brands/advertising/totem": [
        {
            "displayName": "TotalEnergies",
            "id": "totalenergies-39bce9",
            "locationSet": {"include": ["001"], "exclude": ["us"]},
            "matchNames": ["station total", "total", "total access", "totalenergies access"],
            "tags": {
                "brand": "TotalEnergies",
                "brand:wikidata": "Q154037",
                "advertising": "totem",
            },
            "fromTemplate": True,
        }
    ],
}


def _tarball(items: dict[str, list[dict[str, Any]]], version: str = VERSION) -> bytes:
    """A package tarball shaped like NSI's: ``nsi.min.json`` holding ``items``, and a licence."""
    nsi = {"_meta": {"version": version}, "nsi": {k: {"items": v} for k, v in items.items()}}
    files = {
        "package/dist/json/nsi.min.json": json.dumps(nsi, ensure_ascii=False).encode(),
        "package/LICENSE.md": b"## BSD 3-Clause\n",
        "package/package.json": json.dumps({"name": PACKAGE, "version": version}).encode(),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def nsi(tmp_path: Path) -> tuple[bytes, dict[str, Any]]:
    """A package tarball shaped like NSI's holding the entries above, and a mapping pinned to
    it whose word lists are small files (an English list with "total" and "billa" in lower
    case, the way a Debian list holds ordinary words; "Hofer" capitalized, the way it holds
    names)."""
    pytest.importorskip("wordfreq")
    tarball = _tarball(NSI_ITEMS)
    wordlist = tmp_path / "english"
    wordlist.write_text("total\nbilla\nHofer\nbistro\n", encoding="utf-8")
    config = {
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "integrity": build.integrity(tarball),
            "registry": "https://registry.npmjs.org",
            "licence": "BSD-3-Clause",
        },
        "min_single_word_length": 4,
        "wordlists": [{"path": str(wordlist), "package": "test", "any_case": False}],
        "frequencies": {"languages": ["vi", "ms"], "zipf": 4.0},
        "ordinary_words": [],
        "names": {},
        "categories": {
            "food_and_dining": ["shop=supermarket", "amenity=fast_food"],
            "home": ["shop=furniture"],
            "auto_and_transport": ["amenity=fuel"],
        },
    }
    return tarball, config


def _repin(config: dict[str, Any], tarball: bytes) -> bytes:
    config["source"]["integrity"] = build.integrity(tarball)
    return tarball


def _rows(text: str) -> dict[str, tuple[str, str]]:
    rows = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
    return {key: (category, countries) for key, category, countries in rows}


def test_the_build_maps_real_nsi_entries_by_their_osm_tag(
    nsi: tuple[bytes, dict[str, Any]],
) -> None:
    tarball, config = nsi
    text, stats = build.build(tarball, config)
    assert _rows(text) == {
        # shop=supermarket, with its match name folded as statement texts are
        "hofer": ("food_and_dining", "at,si"),
        "hofer osterreich": ("food_and_dining", "at,si"),
        # the furniture store keeps its own name; its bistro (whose brand tag says IKEA) only
        # its own: a payment to "IKEA" is furniture
        "ikea": ("home", "at,de,fr,gb,us"),
        "ikea bistro": ("food_and_dining", "at,de,fr"),
        # "total" alone is an ordinary word: only the fuel brand's longer names are kept (its
        # advertising totem, a copy made from a template, does not vote)
        "totalenergies": ("auto_and_transport", "001"),
        "totalenergies access": ("auto_and_transport", "001"),
        "station total": ("auto_and_transport", "001"),
        "total access": ("auto_and_transport", "001"),
    }
    # "billa" is a lower-case word of the list, so the chain of that name is left out; the
    # bank's tag is not mapped at all
    assert stats["names dropped: ordinary word"] == 2
    assert "erste bank" not in text
    assert stats["names dropped: mostly brands of no category"] == 2  # erste bank(a)
    assert stats["brands skipped: copies made from templates"] == 1
    assert stats["brands"] == 6
    header = text.split("\n", 6)
    assert header[2] == f"# source: npm {PACKAGE}@{VERSION}, integrity {build.integrity(tarball)}"
    assert "package/dist/json/nsi.min.json, 6 brands/ trees (6 brands)" in header[3]
    assert "BSD-3-Clause" in header[4]


def test_only_the_pinned_tarball_is_read(nsi: tuple[bytes, dict[str, Any]]) -> None:
    _, config = nsi
    other = _tarball({**NSI_ITEMS, "brands/shop/pet": []})
    with pytest.raises(SystemExit, match="its integrity is sha512-"):
        build.build(other, config)
    # the registry's form of the digest: sha512, base64
    assert INTEGRITY.startswith("sha512-")
    assert len(build.integrity(b"")) == len(INTEGRITY)
    # a tarball whose JSON is of another version than the one pinned
    older = _repin(config, _tarball(NSI_ITEMS, version="8.0.1"))
    with pytest.raises(SystemExit, match=re.escape(f"not of version {VERSION}")):
        build.build(older, config)


def test_the_tarball_is_read_from_the_cache_and_checked_there(
    nsi: tuple[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    tarball, config = nsi
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{PACKAGE}-{VERSION}.tgz").write_bytes(tarball)
    assert build.fetch_tarball(config["source"], cache) == tarball
    (cache / f"{PACKAGE}-{VERSION}.tgz").write_bytes(tarball + b"x")
    with pytest.raises(SystemExit, match=re.escape(f"is not {PACKAGE}@{VERSION}")):
        build.fetch_tarball(config["source"], cache)
    assert build.tarball_url(config["source"]) == (
        "https://registry.npmjs.org/name-suggestion-index/-/name-suggestion-index-8.0.20260918.tgz"
    )


def test_a_tag_the_mapping_names_must_exist_in_the_pinned_package(
    nsi: tuple[bytes, dict[str, Any]],
) -> None:
    tarball, config = nsi
    config["categories"]["pets"] = ["shop=pet"]
    with pytest.raises(SystemExit, match=r"brands/shop/pet is not in name-suggestion-index@"):
        build.build(tarball, config)


def test_shared_names_go_to_the_majority_then_to_the_first_category_listed(
    nsi: tuple[bytes, dict[str, Any]],
) -> None:
    _, config = nsi
    bistro = dict(NSI_ITEMS["brands/amenity/fast_food"][0], matchNames=["ikea"])
    items = {**NSI_ITEMS, "brands/amenity/fast_food": [bistro]}
    tarball = _repin(config, _tarball(items))
    # one furniture brand and one fast-food brand are called "ikea": food is listed first
    assert _rows(build.build(tarball, config)[0])["ikea"][0] == "food_and_dining"
    config["names"] = {"ikea": "home"}
    assert _rows(build.build(tarball, config)[0])["ikea"][0] == "home"
    config["names"] = {"ikea": "pets"}
    with pytest.raises(SystemExit, match="has no brand of pets"):
        build.build(tarball, config)
    # brands of a tag the mapping leaves out vote too: a name most of whose brands are banks
    # is not a shop's
    bank = {"displayName": "IKEA", "tags": {"amenity": "bank", "name": "IKEA"}}
    items["brands/amenity/bank"] = [dict(bank, id=f"ikeabank-{n}") for n in (1, 2)]
    tarball = _repin(config, _tarball(items))
    config["names"] = {}
    text, stats = build.build(tarball, config)
    assert "ikea" not in _rows(text)
    assert stats["names dropped: mostly brands of no category"] == 1


def test_the_shipped_table_names_its_source_licence_and_digests() -> None:
    text = BRANDS_FILE.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert f"# source: npm {PACKAGE}@{VERSION}, integrity {INTEGRITY}" in header
    assert any(
        re.fullmatch(
            r"# source data: package/dist/json/nsi\.min\.json, \d+ brands/ trees \(\d+ brands\),"
            r" items sha256 [0-9a-f]{64}",
            h,
        )
        for h in header
    )
    assert any("BSD-3-Clause" in h and "LICENSES/name-suggestion-index.txt" in h for h in header)
    mapping = hashlib.sha256(build.TAGS.read_bytes()).hexdigest()
    assert f"# mapping sha256 {mapping}" in header  # rebuilt since the mapping last changed
    notice = (ROOT / "LICENSES" / "name-suggestion-index.txt").read_text(encoding="utf-8")
    assert "Redistribution and use in source and binary forms" in notice
    assert f"{PACKAGE} {VERSION}" in notice
    assert INTEGRITY in notice
    config = build.load_config()
    assert config["source"]["package"] == PACKAGE
    assert config["source"]["version"] == VERSION
    assert config["source"]["integrity"] == INTEGRITY
    rows = _rows(text)
    assert len(rows) > 10_000
    allowed = {c.value for c in Category} - {"uncategorized", "income", "transfer"}
    for key, (category, countries) in rows.items():
        assert key == brand_key(key), key
        assert key.isascii(), key
        assert category in allowed, key
        assert re.fullmatch(r"(?:[a-z]{2}|001)(?:,(?:[a-z]{2}|001))*", countries), key
        if " " not in key:
            assert len(key) >= config["min_single_word_length"], key


def _pinned_tarball() -> Path:
    """The pinned tarball: ``BANKHUB_NSI_TARBALL``, else where the build keeps it in
    ``.cache/`` (``scripts/bootstrap`` downloads it there)."""
    named = os.environ.get("BANKHUB_NSI_TARBALL")
    path = Path(named) if named else build.CACHE / f"{PACKAGE}-{VERSION}.tgz"
    if not path.is_file():
        pytest.skip(
            f"{path} is missing: set BANKHUB_NSI_TARBALL to {PACKAGE}-{VERSION}.tgz"
            " (npm pack) or run scripts/bootstrap --nsi, which downloads it into .cache/"
        )
    return path


def test_the_shipped_table_is_what_the_script_builds_from_the_pinned_package() -> None:
    """Runs where the pinned tarball is at hand with the same word lists the table was built
    with."""
    path = _pinned_tarball()
    pytest.importorskip("wordfreq")
    config = build.load_config()
    shipped = BRANDS_FILE.read_text(encoding="utf-8")
    for wordlist in config["wordlists"]:
        wl = Path(wordlist["path"])
        if not wl.is_file():
            pytest.skip(f"{wl} is missing (apt-get install {wordlist['package']})")
        digest = hashlib.sha256(wl.read_bytes()).hexdigest()
        if f"{wl.name} sha256 {digest}" not in shipped:
            pytest.skip(f"{wl} is another version than the table was built with")
    assert build.build(path.read_bytes(), config)[0] == shipped


def test_the_mapping_names_only_categories_a_shop_can_have() -> None:
    config = yaml.safe_load(build.TAGS.read_text(encoding="utf-8"))
    tags = build.tag_categories(config)
    assert tags["shop=supermarket"] == "food_and_dining"
    assert tags["amenity=fuel"] == "auto_and_transport"
    assert "amenity=bank" not in tags
    assert "office=insurance" not in tags


# ---- the categorizer ----


def _cat(text: str, amount: str = "-12.40", **kwargs: Any) -> str:
    categories._memo.clear()
    return categorize(text, None, Decimal(amount), **kwargs)


def test_a_local_chain_no_keyword_knows_is_categorized_by_its_brand() -> None:
    assert _cat("HOFER DANKT 0123 KORNEUBURG") == "food_and_dining"
    assert _cat("Kartenzahlung TEDI 1234 Wien") == "shopping"
    assert _cat("BIPA Filiale 512") == "personal_care"
    # the longest name wins where a chain's outlets are named apart
    assert _cat("120522 CB****1234 E.LECLERC 33BORDEAUX") == "food_and_dining"


def test_without_the_table_those_lines_are_uncategorized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(categories, "_brands", Brands([]))
    assert _cat("HOFER DANKT 0123 KORNEUBURG") == "uncategorized"
    assert _cat("Kartenzahlung TEDI 1234 Wien") == "uncategorized"
    assert _cat("BIPA Filiale 512") == "uncategorized"


def test_ordinary_words_that_are_also_brands_do_not_categorize() -> None:
    # each is a chain's name in NSI (TotalEnergies' "total", Shell, Next, Boots, Target,
    # Orange, Match, Action, Spar): as words of a booking text they say nothing
    table = brands()
    for word in ("total", "shell", "next", "boots", "target", "orange", "match", "action", "spar"):
        assert word not in table.names, word
    assert _cat("Total amount due for next month") == "uncategorized"
    assert _cat("Rechnung Nr 4711 Action") == "uncategorized"
    # whole words only: a brand inside a longer word is not the brand
    assert _cat("Einkauf HOFERSTRASSE 12") == "uncategorized"
    assert _cat("Schofer GmbH") == "uncategorized"


def test_keyword_rules_come_before_brands() -> None:
    # "gehalt" (salary) is a rule; a credit is never decided by a brand anyway
    assert _cat("Gehalt Hofer KG", "2100.00") == "income"
    # a debit's own rule word wins over the chain named in it
    assert _cat("Kontofuehrungsentgelt HOFER") == "fees_and_charges"


def test_a_credit_from_a_chain_is_not_what_the_chain_sells() -> None:
    assert _cat("HOFER KG Gutschrift 0123", "12.40") == "uncategorized"


def test_an_apps_own_rules_win_over_brands() -> None:
    mine = app_rules([AppRule(category="shopping", keyword="hofer")])
    assert _cat("HOFER DANKT 0123", overrides=mine) == "shopping"


def test_a_malformed_table_row_stops_the_load() -> None:
    with pytest.raises(RulesError, match="bad row"):
        Brands(["Hofer\tfood_and_dining\tat"])
    with pytest.raises(RulesError, match="bad row"):
        Brands(["hofer\tgroceries\tat"])
    assert Brands(["# a comment", "", "hofer\tfood_and_dining\tat"]).best("x hofer") == (
        Category.FOOD_AND_DINING
    )
