"""The categorizer measured on statement lines rewritten from what real banks printed (booking
words and public names kept, private names and identifiers invented; see ``data/README.md``),
collected from public repositories and labelled apart from the rules (``data/heldout.csv``).

The set was split once, by a hash of each line's source and text, into a development half (the
rules were extended from what its misses show in general) and a held-out half that no rule was
written from; each line's ``half`` column keeps that assignment, so the halves stay the ones the
figures were measured on now that the lines' invented parts no longer hash as they did. The
test prints both halves' figures and fails when the held-out half falls below what it
measured: the target of at most 15% uncategorized and at least 85% correct is not met on this
set, and the floors say by how much (see ``data/README.md``).

    BANKHUB_TEST_FAST=1 BANKHUB_TEST_WORKERS=0 \\
        scripts/test tests/categories/test_heldout_accuracy.py -s
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bankhub.categories import Category, categorize
from tests.categories.test_accuracy import meta

HELDOUT = Path(__file__).parent / "data" / "heldout.csv"
LEFT_OUT = Path(__file__).parent / "data" / "heldout_left_out.csv"
TARGET_MAX_UNCATEGORIZED = Decimal("0.15")
TARGET_MIN_CORRECT = Decimal("0.85")
# Measured on the held-out half with the rules and merchant brands of this version (the brand
# table built from the npm release of name-suggestion-index reaches the same figures; see
# data/README.md); the target is not reached on this set, so these floors keep what was
# reached from slipping.
FLOOR_MAX_UNCATEGORIZED = Decimal("0.223")
FLOOR_MIN_CORRECT = Decimal("0.743")


def rows() -> list[dict[str, str]]:
    with HELDOUT.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def in_development_half(row: dict[str, str]) -> bool:
    """Whether a line belongs to the half the rules may learn from.

    The split was made once by a hash of the line's source file and its description with
    digits and punctuation dropped, so the same shop printed twice in one export fell in the
    same half and a rule learnt from one could not be tested on its twin. The lines' private
    names and identifiers were rewritten afterwards, which would move lines if the hash were
    taken again; the ``half`` column keeps the assignment the figures were measured on.
    """
    return row["half"] == "development"


@dataclass
class Figures:
    total: int = 0
    correct: int = 0
    uncategorized: int = 0
    languages: Counter[str] = field(default_factory=Counter)
    correct_by_language: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)

    @property
    def share_correct(self) -> Decimal:
        return Decimal(self.correct) / self.total

    @property
    def share_uncategorized(self) -> Decimal:
        return Decimal(self.uncategorized) / self.total

    def line(self, name: str) -> str:
        wrong = self.total - self.correct - self.uncategorized
        per_language = ", ".join(
            f"{lang} {Decimal(self.correct_by_language[lang]) / n:.0%} of {n}"
            for lang, n in sorted(self.languages.items())
        )
        return (
            f"{name}: {self.total} lines, {self.share_correct:.1%} correct, "
            f"{self.share_uncategorized:.1%} uncategorized, {Decimal(wrong) / self.total:.1%} wrong"
            f" ({per_language})"
        )


def measure(data: list[dict[str, str]]) -> Figures:
    figures = Figures()
    for row in data:
        found = categorize(
            row["description"],
            None,
            Decimal(row["amount"]),
            counterparty=row["counterparty"] or None,
            meta=meta(row["codes"]),
        )
        figures.total += 1
        figures.languages[row["lang"]] += 1
        if found == row["category"]:
            figures.correct += 1
            figures.correct_by_language[row["lang"]] += 1
        else:
            text = row["description"][:50]
            figures.misses.append(f"{row['lang']} {text!r}: {found}, not {row['category']}")
        if found == Category.UNCATEGORIZED:
            figures.uncategorized += 1
    return figures


def test_every_line_names_its_source_and_a_category_of_the_taxonomy() -> None:
    data = rows()
    assert len(data) >= 200
    assert len({r["lang"] for r in data}) >= 4
    valid = {c.value for c in Category} - {Category.UNCATEGORIZED.value}
    assert {r["category"] for r in data} <= valid
    for row in data:
        assert row["source"].startswith(("layout seen in github:", "layout seen in corpus:")), row
        Decimal(row["amount"])
    # the lines left out stay on record with their reason
    with LEFT_OUT.open(encoding="utf-8", newline="") as f:
        left_out = list(csv.DictReader(f))
    reasons = {"unknown", "taste", "cash", "nopurpose", "garbage", "duplicate"}
    assert {r["reason"] for r in left_out} <= reasons
    for row in left_out:
        assert row["source"].startswith(("layout seen in github:", "layout seen in corpus:")), row


def test_the_split_is_fixed_and_both_halves_are_used() -> None:
    data = rows()
    assert {r["half"] for r in data} == {"development", "held-out"}
    development = [r for r in data if in_development_half(r)]
    # the figures in data/README.md are of these halves: a new line or another assignment is a
    # new split, to be measured again before the rules are touched
    assert (len(development), len(data) - len(development)) == (126, 144)
    # the same shop in the same export never lands in both halves
    halves: dict[tuple[str, str], set[bool]] = {}
    for row in data:
        text = re.sub(r"[^a-z]+", " ", row["description"].lower()).strip()
        halves.setdefault((row["source"], text), set()).add(in_development_half(row))
    assert all(len(sides) == 1 for sides in halves.values())


def test_accuracy_on_the_held_out_half() -> None:
    data = rows()
    development = measure([r for r in data if in_development_half(r)])
    held_out = measure([r for r in data if not in_development_half(r)])
    print()
    print(development.line("development half"))
    print(held_out.line("held-out half"))
    for miss in held_out.misses:
        print("  held-out miss:", miss)
    print(
        f"target: at most {TARGET_MAX_UNCATEGORIZED:.0%} uncategorized and at least "
        f"{TARGET_MIN_CORRECT:.0%} correct"
    )
    assert held_out.share_uncategorized <= FLOOR_MAX_UNCATEGORIZED
    assert held_out.share_correct >= FLOOR_MIN_CORRECT
