"""How the real statement corpus comes out of the categorizer: one line per category.

    .venv/bin/python -m tests.categories.corpus_figures

Every file of ``../shared/corpus`` that bankhub reads (OFX, camt, MT940, CSV) is parsed and
each transaction categorized as a sync would; the corpus carries no labels, so this counts
what is left ``uncategorized`` (and shows each category's share) rather than accuracy.
Measured: 103 of 124 (83.1%) uncategorized with the rules before they became data; 93 of 124
(75.0%) after; 90 of 124 (72.6%) once the rules were extended from real banks' exports
(``data/README.md``); still 90 with the merchant brands, which change no corpus line. Most
corpus lines are anonymised: "Firma", "NAME NAME", "-memo-message-".
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from bankhub.categories import categorize
from bankhub.statements import StatementError, parse_statement
from tests.statements.corpus import CORPUS

FOLDERS = ("ofx", "camt", "mt940", "csv")


def corpus_categories() -> Counter[str]:
    counts: Counter[str] = Counter()
    for folder in FOLDERS:
        for path in sorted((CORPUS / folder).rglob("*")):
            if not path.is_file():
                continue
            try:
                parsed = parse_statement(path.read_bytes(), path.name)
            except StatementError:
                continue
            for account in parsed.accounts:
                for t in account.transactions:
                    args = (t.description, t.merchant, t.amount, t.category, t.counterparty_name)
                    counts[categorize(*args, meta=t.meta)] += 1
    return counts


def main() -> None:
    counts = corpus_categories()
    total = sum(counts.values())
    for category, n in counts.most_common():
        print(f"{category:22} {n:4}  {Decimal(100 * n) / total:5.1f}%")
    print(f"{'total':22} {total:4}")


if __name__ == "__main__":
    main()
