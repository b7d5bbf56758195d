#!/usr/bin/env python3
"""Build ``src/bankhub/merchant_brands.tsv`` from a pinned commit of the OpenStreetMap
name-suggestion-index (NSI, BSD-3-Clause).

    git clone https://github.com/osmlab/name-suggestion-index /tmp/nsi
    .venv/bin/python scripts/build_merchant_brands.py /tmp/nsi

The argument is any git repository of NSI that holds the commit pinned in
``scripts/merchant_brand_tags.yaml`` (a clone, or a bare mirror): the script reads the files of
that commit with git itself, so a newer checkout builds the same file. It writes the TSV (or
``--out``) and prints what it kept and dropped.

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
import hashlib
import json
import subprocess  # nosec B404: git is run on a repository path the operator names
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

from bankhub.categories import Category, brand_key, normalize

ROOT = Path(__file__).resolve().parent.parent
TAGS = Path(__file__).with_name("merchant_brand_tags.yaml")
OUT = ROOT / "src" / "bankhub" / "merchant_brands.tsv"
LICENCE_FILE = "LICENSE.md"
#: the category of a brand whose tag the mapping leaves out
NONE = ""


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(  # noqa: S603 - fixed git arguments, no shell
        ["git", "-C", str(repo), *args],  # noqa: S607 - git from PATH, as a developer runs it
        input=data,
        capture_output=True,
        check=True,
    ).stdout


def read_files(repo: Path, commit: str, paths: list[str]) -> dict[str, bytes]:
    """The bytes of ``paths`` at ``commit`` (one ``git cat-file --batch``)."""
    request = "".join(f"{commit}:{path}\n" for path in paths).encode()
    out = _git(repo, "cat-file", "--batch", data=request)
    files: dict[str, bytes] = {}
    at = 0
    for path in paths:
        header_end = out.index(b"\n", at)
        header = out[at:header_end].split()
        if header[-1] == b"missing":
            raise SystemExit(f"{path} is not in {commit}: fix merchant_brand_tags.yaml")
        size = int(header[2])
        files[path] = out[header_end + 1 : header_end + 1 + size]
        at = header_end + 1 + size + 1
    return files


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


def build(repo: Path, config: dict[str, Any]) -> tuple[str, Counter[str]]:
    commit = config["source"]["commit"]
    mapping = tag_categories(config)
    mapped = sorted(f"data/brands/{tag.replace('=', '/')}.json" for tag in mapping)
    listed = _git(repo, "ls-tree", "-r", "--name-only", commit, "data/brands/").decode()
    # every brand file votes, the ones the mapping leaves out for "no category": a name that
    # is mostly a bank's or an insurer's is not a shop's (Raiffeisen banks, not the fuel
    # stations of that name)
    paths = sorted({p for p in listed.splitlines() if p.endswith(".json")} | set(mapped))
    files = read_files(repo, commit, [*paths, LICENCE_FILE])
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode() + b"\0" + files[path] + b"\0")
    ordinary = Ordinary(config)
    stats: Counter[str] = Counter()
    # name key → category → number of brands, and the countries of those brands
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    countries: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in paths:
        tag = path.removeprefix("data/brands/").removesuffix(".json").replace("/", "=")
        category = mapping.get(tag, NONE)
        for item in json.loads(files[path])["items"]:
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
    licence_sha = hashlib.sha256(files[LICENCE_FILE]).hexdigest()
    header = (
        "# bankhub merchant brands: normalized brand name -> category -> countries (ISO 3166,"
        " 001 = anywhere)\n"
        "# built by scripts/build_merchant_brands.py with scripts/merchant_brand_tags.yaml;"
        " do not edit by hand\n"
        f"# source: {config['source']['repository']} commit {commit}\n"
        f"# source files: {len(paths)} of data/brands, sha256 {digest.hexdigest()}\n"
        f"# licence: {config['source']['licence']} ({LICENCE_FILE} sha256 {licence_sha}),"
        " Copyright name-suggestion-index contributors; see LICENSES/name-suggestion-index.txt\n"
        f"# mapping sha256 {hashlib.sha256(TAGS.read_bytes()).hexdigest()}\n"
        f"# word lists: {'; '.join(ordinary.digests)}\n"
    )
    return header + "".join(rows), stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="a git repository of name-suggestion-index")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text, stats = build(args.repo, load_config())
    args.out.write_text(text, encoding="utf-8")
    for what, count in sorted(stats.items()):
        print(f"{what}: {count}")
    print(f"wrote {args.out} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
