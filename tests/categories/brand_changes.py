"""Which lines the merchant brand table changes, on both labelled sets and the corpus.

    .venv/bin/python -m tests.categories.brand_changes

Each set is categorized twice, with an empty brand table and with the shipped one. Prints
each set's figures both ways; for the hand-written set, the real-bank set's development half
and the corpus it prints every changed line, to be checked by eye. For the held-out half it
prints the figures and the number of changed lines only: its lines are not to be looked at
when deciding anything (``data/README.md``).
"""

from __future__ import annotations

from decimal import Decimal

from bankhub import categories
from bankhub.categories import Brands, categorize
from tests.categories import corpus_figures, test_accuracy, test_heldout_accuracy
from tests.categories.test_accuracy import meta

Row = dict[str, str]


def _run(rows: list[Row], *, brands: bool) -> list[str]:
    categories._memo.clear()
    categories._brands = None if brands else Brands([])
    try:
        return [
            categorize(
                r["description"],
                None,
                Decimal(r["amount"]),
                counterparty=r["counterparty"] or None,
                meta=meta(r["codes"]),
            )
            for r in rows
        ]
    finally:
        categories._memo.clear()
        categories._brands = None


def _figures(rows: list[Row], found: list[str]) -> str:
    n = len(rows)
    correct = sum(f == r["category"] for f, r in zip(found, rows, strict=True))
    unknown = found.count("uncategorized")
    return (
        f"{100 * correct / n:.1f}% correct, {100 * unknown / n:.1f}% uncategorized, "
        f"{100 * (n - correct - unknown) / n:.1f}% wrong"
    )


def _corpus(*, brands: bool) -> dict[str, int]:
    categories._memo.clear()
    categories._brands = None if brands else Brands([])
    try:
        return dict(corpus_figures.corpus_categories())
    finally:
        categories._memo.clear()
        categories._brands = None


def main() -> None:
    real = test_heldout_accuracy.rows()
    development = [r for r in real if test_heldout_accuracy.in_development_half(r)]
    held_out = [r for r in real if not test_heldout_accuracy.in_development_half(r)]
    for name, rows, show in (
        ("hand-written set", test_accuracy.rows(), True),
        ("development half", development, True),
        ("held-out half", held_out, False),
    ):
        without, with_ = _run(rows, brands=False), _run(rows, brands=True)
        changed = [(r, a, b) for r, a, b in zip(rows, without, with_, strict=True) if a != b]
        print(f"{name}: {len(rows)} lines")
        print(f"  without brands: {_figures(rows, without)}")
        print(f"  with brands:    {_figures(rows, with_)}")
        print(f"  lines changed:  {len(changed)}")
        if show:
            for row, before, after in changed:
                print(f"    {row['description'][:60]!r}: {before} -> {after} ({row['category']})")
    plain, branded = _corpus(brands=False), _corpus(brands=True)
    print(f"corpus: {sum(branded.values())} lines")
    print(f"  by category without brands: {sorted(plain.items())}")
    print(f"  by category with brands:    {sorted(branded.items())}")


if __name__ == "__main__":
    main()
