"""What one categorization costs, on the statement texts of both labelled sets.

    .venv/bin/python -m tests.categories.timing

Prints microseconds per transaction for the rule walk itself (every text new, as the first
sync of an account sees it) and for a text seen before (the memo's answer): the best of
several rounds of processor time, so that other work on the machine counts as little as it
can. The figures in docs/categories.md come from this command.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from bankhub import categories
from tests.categories import test_accuracy, test_heldout_accuracy
from tests.categories.test_accuracy import meta

ROUNDS = 20


Text = tuple[str, Decimal, str | None, dict[str, Any] | None]


def texts() -> list[Text]:
    return [
        (r["description"], Decimal(r["amount"]), r["counterparty"] or None, meta(r["codes"]))
        for r in test_accuracy.rows() + test_heldout_accuracy.rows()
    ]


def per_transaction(data: list[Text], *, fresh: bool) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        if fresh:
            categories._memo.clear()
        started = time.process_time()
        for description, amount, counterparty, codes in data:
            if fresh:
                categories._memo.clear()
            categories.categorize(description, None, amount, counterparty=counterparty, meta=codes)
        best = min(best, time.process_time() - started)
    return best / len(data) * 1e6


def main() -> None:
    data = texts()
    print(f"{len(data)} statement texts, best of {ROUNDS} rounds")
    print(f"new text (the rule walk): {per_transaction(data, fresh=True):5.1f} µs per transaction")
    print(f"text seen before (memo):  {per_transaction(data, fresh=False):5.1f} µs per transaction")


if __name__ == "__main__":
    main()
