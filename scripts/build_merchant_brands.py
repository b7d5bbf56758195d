#!/usr/bin/env python3
"""Build ``src/bankhub/merchant_brands.tsv`` from a pinned npm release of the OpenStreetMap
name-suggestion-index (NSI, BSD-3-Clause).

    .venv/bin/python scripts/build_merchant_brands.py            # .cache/, else the registry
    .venv/bin/python scripts/build_merchant_brands.py NSI.tgz    # a tarball at hand
    .venv/bin/python scripts/build_merchant_brands.py --fetch-only   # only fill .cache/

The source is the npm package ``name-suggestion-index`` at the version pinned in
``scripts/merchant_brand_tags.yaml`` with its ``dist.integrity`` (the sha512 npm publishes).
Without an argument the script reads the tarball from ``.cache/name-suggestion-index/`` or
downloads it from the npm registry into that place; it refuses a tarball whose digest is not
the pinned one, then reads ``package/dist/json/nsi.min.json`` and ``package/LICENSE.md`` out of
it. It writes the TSV (or ``--out``) and prints what it kept and dropped.

Why a script of our own and not a library: NSI is published as JSON for its own JavaScript
tooling; no maintained Python package ships it. What bankhub needs from it is small (brand
names and match names, the OSM tag that says what the brand sells, its countries), so a
reviewed mapping table plus this reader make a compact, diffable file that loads fast.

A name is kept when it can only mean the brand: it must be Latin text after bankhub's
normalization (the form statement texts are matched in), a single word must be at least
``min_single_word_length`` letters long and not an ordinary word of any language bankhub reads
(wordfreq's Zipf frequency below ``ordinary_zipf``, plus the reviewed ``ordinary_words``), and
a name that brands of different categories share goes to the category most of them have (a
tie to the category listed first in the mapping, unless the mapping's ``names`` settles it);
brands whose tag the mapping leaves out (banks, insurers) count as a category of their own,
listed before all, and a name they win is dropped.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

from bankhub.categories import Category, brand_key, normalize

ROOT = Path(__file__).resolve().parent.parent
TAGS = Path(__file__).with_name("merchant_brand_tags.yaml")
OUT = ROOT / "src" / "bankhub" / "merchant_brands.tsv"
CACHE = ROOT / ".cache" / "name-suggestion-index"
DATA_FILE = "package/dist/json/nsi.min.json"
LICENCE_FILE = "package/LICENSE.md"
#: the trees of nsi.min.json read: ``brands/<key>/<value>``, one per OSM tag
TREE = "brands/"
#: the category of a brand whose tag the mapping leaves out
NONE = ""


def tarball_name(source: dict[str, Any]) -> str:
    return f"{source['package']}-{source['version']}.tgz"


def tarball_url(source: dict[str, Any]) -> str:
    """Where the npm registry serves the pinned tarball (``npm view PACKAGE@VERSION
    dist.tarball``)."""
    registry = str(source["registry"]).rstrip("/")
    return f"{registry}/{source['package']}/-/{tarball_name(source)}"


def integrity(data: bytes) -> str:
    """The npm ``dist.integrity`` of a tarball: ``sha512-`` and the base64 of its digest."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def check(data: bytes, source: dict[str, Any], where: str) -> bytes:
    if integrity(data) != source["integrity"]:
        raise SystemExit(
            f"{where} is not {source['package']}@{source['version']}: its integrity is"
            f" {integrity(data)}, merchant_brand_tags.yaml pins {source['integrity']}"
        )
    return data


def fetch_tarball(source: dict[str, Any], cache: Path = CACHE) -> bytes:
    """The pinned tarball from ``cache``, else from the registry (kept in ``cache`` once its
    integrity is checked)."""
    path = cache / tarball_name(source)
    if path.is_file():
        return check(path.read_bytes(), source, str(path))
    url = tarball_url(source)
    if not url.startswith("https://"):
        raise SystemExit(f"{url}: the registry must be reached over https")
    print(f"downloading {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310  # nosec B310: https only, checked above
        data = check(response.read(), source, url)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)
    return data


def read_package(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The parsed ``nsi.min.json`` and the bytes of ``LICENSE.md`` of a package tarball."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name in (DATA_FILE, LICENCE_FILE):
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read()
    for name in (DATA_FILE, LICENCE_FILE):
        if name not in files:
            raise SystemExit(f"the tarball has no {name}")
    return json.loads(files[DATA_FILE]), files[LICENCE_FILE]


def load_config(path: Path = TAGS) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    valid = {c.value for c in Category} - {"uncategorized", "income", "transfer"}
    for category in [*config["categories"], *(config.get("names") or {}).values()]:
        if category not in valid:
            raise SystemExit(f"{path.name}: {category!r} is not a category a shop can have")
    return config


def tag_categories(config: dict[str, Any]) -> dict[str, str]:
    """``key=value`` → category, each tag at most once."""
    table: dict[str, str] = {}
    for category, tags in config["categories"].items():
        for tag in tags:
            if tag in table:
                raise SystemExit(f"{tag} is mapped twice")
            table[tag] = category
    return table


class Ordinary:
    """Whether a word is an ordinary word of a language bankhub reads."""

    def __init__(self, config: dict[str, Any]) -> None:
        from wordfreq import zipf_frequency  # a build-time tool only: not a runtime dependency

        self._zipf = zipf_frequency
        self.languages: list[str] = config["frequencies"]["languages"]
        self.threshold = float(config["frequencies"]["zipf"])
        words: set[str] = set(config["ordinary_words"])
        self.digests: list[str] = []
        for wordlist in config["wordlists"]:
            path = Path(wordlist["path"])
            if not path.is_file():
                raise SystemExit(f"{path} is missing: apt-get install {wordlist['package']}")
            data = path.read_bytes()
            self.digests.append(f"{path.name} sha256 {hashlib.sha256(data).hexdigest()}")
            for line in data.decode("utf-8").splitlines():
                if wordlist["any_case"] or line.islower():
                    words.add(brand_key(normalize(line)))
        self.words = frozenset(words)

    def __call__(self, word: str) -> bool:
        return word in self.words or any(
            self._zipf(word, lang) >= self.threshold for lang in self.languages
        )


def names_of(item: dict[str, Any]) -> set[str]:
    """The names a brand's shops go by. Not its ``brand`` tag: a chain's restaurant or fuel
    station ("IKEA Restaurant") names its parent there, which is not what it sells."""
    tags = item.get("tags", {})
    raw = [item.get("displayName"), tags.get("name"), tags.get("name:en")]
    raw += item.get("matchNames", [])
    return {name for name in raw if name}


def countries_of(item: dict[str, Any]) -> list[str]:
    include = item.get("locationSet", {}).get("include", [])
    return sorted({c.lower() for c in include if isinstance(c, str) and len(c) == 2})


def keep_reason(name: str, config: dict[str, Any], ordinary: Ordinary) -> str | None:
    """Why ``name`` (as NSI spells it) is not kept, or None to keep it."""
    folded = normalize(name)
    if not folded.isascii():
        return "not Latin"
    key = brand_key(folded)
    if not key:
        return "no letters"
    words = key.split(" ")
    if len(words) == 1:
        if len(key) < config["min_single_word_length"] or key.isdigit():
            return "short"
        if ordinary(key):
            return "ordinary word"
    elif all(len(w) < 3 or ordinary(w) for w in words) and len(key) < 8:
        # "la la", "u 2": a short phrase of common bits is too easily in a text by chance
        return "short"
    return None


def build(tarball: bytes, config: dict[str, Any]) -> tuple[str, Counter[str]]:
    """The TSV built from the package ``tarball`` (checked against the pinned integrity)."""
    source = config["source"]
    pinned = f"{source['package']}@{source['version']}"
    nsi, licence = read_package(check(tarball, source, "the tarball"))
    if nsi.get("_meta", {}).get("version") != source["version"]:
        raise SystemExit(f"nsi.min.json is not of version {source['version']}")
    mapping = tag_categories(config)
    # every brand tree votes, the ones the mapping leaves out for "no category": a name that
    # is mostly a bank's or an insurer's is not a shop's (Raiffeisen banks, not the fuel
    # stations of that name)
    trees = sorted(key for key in nsi["nsi"] if key.startswith(TREE))
    for tag in sorted(mapping):
        if f"{TREE}{tag.replace('=', '/')}" not in trees:
            raise SystemExit(f"{TREE}{tag.replace('=', '/')} is not in {pinned}: fix {TAGS.name}")
    digest = hashlib.sha256()
    for tree in trees:
        digest.update(tree.encode() + b"\0")
        digest.update(json.dumps(nsi["nsi"][tree]["items"], sort_keys=True).encode() + b"\0")
    ordinary = Ordinary(config)
    stats: Counter[str] = Counter()
    # name key → category → number of brands, and the countries of those brands
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    countries: dict[tuple[str, str], set[str]] = defaultdict(set)
    for tree in trees:
        category = mapping.get(tree.removeprefix(TREE).replace("/", "="), NONE)
        for item in nsi["nsi"][tree]["items"]:
            if item.get("fromTemplate"):
                # a copy of another tree's brand made by NSI's build (every fuel brand's
                # advertising totem, every bank's ATM): the brand votes once, in its own tree
                stats["brands skipped: copies made from templates"] += 1
                continue
            stats["brands"] += 1
            keys: set[str] = set()
            for name in names_of(item):
                reason = keep_reason(name, config, ordinary)
                if reason:
                    stats[f"names dropped: {reason}"] += 1
                else:
                    keys.add(brand_key(normalize(name)))
            for key in keys:  # each brand votes once for each of its names
                votes[key][category] += 1
                countries[key, category].update(countries_of(item) or ["001"])
    order = [NONE, *config["categories"]]
    settled: dict[str, str] = config.get("names") or {}
    rows: list[str] = []
    for key in sorted(votes):
        # most brands first, then the category listed first in the mapping
        category = settled.get(key) or min(
            votes[key], key=lambda c: (-votes[key][c], order.index(c))
        )
        if category not in votes[key]:
            raise SystemExit(f"names: {key!r} has no brand of {category}")
        if category == NONE:
            stats["names dropped: mostly brands of no category"] += 1
            continue
        if len(votes[key].keys() - {NONE}) > 1:
            stats["names kept that brands of several categories share"] += 1
        rows.append(f"{key}\t{category}\t{','.join(sorted(countries[key, category]))}\n")
    stats["names kept"] = len(rows)
    licence_sha = hashlib.sha256(licence).hexdigest()
    header = (
        "# bankhub merchant brands: normalized brand name -> category -> countries (ISO 3166,"
        " 001 = anywhere)\n"
        "# built by scripts/build_merchant_brands.py with scripts/merchant_brand_tags.yaml;"
        " do not edit by hand\n"
        f"# source: npm {pinned}, integrity {source['integrity']}\n"
        f"# source data: {DATA_FILE}, {len(trees)} {TREE} trees ({stats['brands']} brands),"
        f" items sha256 {digest.hexdigest()}\n"
        f"# licence: {source['licence']} ({LICENCE_FILE} sha256 {licence_sha}),"
        " Copyright name-suggestion-index contributors; see LICENSES/name-suggestion-index.txt\n"
        f"# mapping sha256 {hashlib.sha256(TAGS.read_bytes()).hexdigest()}\n"
        f"# word lists: {'; '.join(ordinary.digests)}\n"
    )
    return header + "".join(rows), stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "tarball",
        type=Path,
        nargs="?",
        help="the pinned tarball (default: .cache/name-suggestion-index/, else the registry)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--fetch-only",
        action="store_true",
        help="only make sure the pinned tarball is in .cache/ (scripts/bootstrap's test set-up)",
    )
    args = parser.parse_args(argv)
    config = load_config()
    if args.fetch_only:
        fetch_tarball(config["source"])
        return 0
    if args.tarball:
        data = check(args.tarball.read_bytes(), config["source"], str(args.tarball))
    else:
        data = fetch_tarball(config["source"])
    text, stats = build(data, config)
    args.out.write_text(text, encoding="utf-8")
    for what, count in sorted(stats.items()):
        print(f"{what}: {count}")
    print(f"wrote {args.out} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
