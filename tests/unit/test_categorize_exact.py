"""The categorizer's fast path and memo give exactly what the rules say, for every input.

``reference`` is the rule walk written plainly (every token in order, every phrase, prefix and
suffix tried on it, then every brand name at every word); ``categorize`` screens with sets and
substrings and memoizes its answers.
They must agree on every text, including keyword soups built to hit phrase, prefix and suffix
boundaries.
"""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest

from bankhub import categories
from bankhub.categories import Category, categorize, normalize
from bankhub.connectors.sandbox.history import Profile, ledger


def reference(
    description: str, merchant: str | None, amount: Decimal, connector_category: str | None
) -> str:
    if connector_category:
        known = connector_category.strip().lower()
        if known in {c.value for c in Category}:
            return known
    text = normalize(f"{merchant} {description}" if merchant else description)
    sign = "credit" if amount > 0 else "debit"
    tokens = categories._TOKEN.findall(text)
    candidates: list[int] = []
    for position, token in enumerate(tokens):
        for length in range(1, categories._LONGEST + 1):
            index = categories._PHRASES.get(" ".join(tokens[position : position + length]))
            if index is not None:
                candidates.append(index)
        candidates.extend(i for key, i in categories._PREFIXES.items() if token.startswith(key))
        candidates.extend(i for key, i in categories._SUFFIXES.items() if token.endswith(key))
    allowed = [i for i in candidates if categories._SIGNS[i] in ("any", sign)]
    if allowed:
        return categories._CATEGORIES[min(allowed)].value
    if sign == "debit":
        # the brand table read plainly: at each word in order, the longest name starting there
        for position in range(len(tokens)):
            for length in range(BRAND_LONGEST, 0, -1):
                found = BRANDS.get(" ".join(tokens[position : position + length]))
                if found is not None:
                    return found
    return "uncategorized"


def _brand_rows() -> dict[str, str]:
    lines = categories.BRANDS_FILE.read_text(encoding="utf-8").splitlines()
    return dict(line.split("\t")[:2] for line in lines if not line.startswith("#"))


BRANDS = _brand_rows()
BRAND_LONGEST = max(name.count(" ") + 1 for name in BRANDS)


def keyword_soup(rng: random.Random) -> str:
    """Words of the rules, whole, glued into compounds, cut, accented and mixed with noise."""
    words: list[str] = []
    keywords = [k.strip("*") for _, _, keys in categories._RULES for k in keys]
    keywords += rng.sample(sorted(BRANDS), 200)  # and chains' names, for the brand step
    for _ in range(rng.randint(1, 8)):
        pick = rng.random()
        word = rng.choice(keywords)
        if pick < 0.2:
            word = word + rng.choice(keywords).replace(" ", "")  # a compound
        elif pick < 0.3:
            word = rng.choice(keywords).replace(" ", "") + word
        elif pick < 0.4:
            word = word[: rng.randint(1, len(word))]
        elif pick < 0.5:
            word = str(rng.randint(0, 10**7))
        elif pick < 0.55:
            word = word.upper().replace("A", "Á").replace("E", "Ế").replace("SS", "ß")
        words.append(word)
    return rng.choice([" ", "/", "-", "*", ".", "  "]).join(words)


def sandbox_rows() -> list[tuple[str, str | None, Decimal, str | None]]:
    rows: list[tuple[str, str | None, Decimal, str | None]] = []
    for country, currency in [("VN", "VND"), ("DE", "EUR"), ("GB", "GBP"), ("US", "USD")]:
        book = ledger(Profile("s", 5, currency, country, "user_good", date(2025, 3, 14)))
        for txs in book.transactions.values():
            rows.extend((t.description, t.merchant, t.amount, t.category) for t in txs)
    return rows


def test_sandbox_and_bench_texts_agree_with_the_reference() -> None:
    rows = sandbox_rows()
    rows += [
        ("CARD PAYMENT TESCO STORES 4711 LONDON", "Tesco", Decimal("-42.50"), None),
        ("KARTENZAHLUNG LIDL DIENSTLEISTUNG FIL 12 BERLIN", "Lidl", Decimal("-31.80"), None),
        ("UBER *TRIP HELP.UBER.COM 99", "Uber", Decimal("-18.70"), None),
        ("GEHALT ACME GMBH LOHN/GEHALT 3", None, Decimal("3250.00"), None),
        ("KONTOFUEHRUNGSENTGELT 7", None, Decimal("-6.90"), None),
        ("VERWENDUNGSZWECK 5 BELEG 8841 XYZ TRADING CO", None, Decimal("-129.90"), None),
        ("7-ELEVEN 99 SPEEDMART", None, Decimal("-3.00"), None),
    ]
    for row in rows:
        assert categorize(*row) == reference(*row), row
        assert categorize(*row) == reference(*row), row  # the memo's answer


@pytest.mark.parametrize("seed", range(4))
def test_keyword_soups_agree_with_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(3000):
        text = keyword_soup(rng)
        merchant = keyword_soup(rng) if rng.random() < 0.3 else None
        amount = Decimal(rng.choice(["-12.50", "0", "1200.00"]))
        category = rng.choice([None, None, None, "shopping", " Income ", "groceries", ""])
        assert categorize(text, merchant, amount, category) == reference(
            text, merchant, amount, category
        ), (text, merchant, amount, category)


def test_the_memo_is_bounded_and_keyed_by_the_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(categories, "MEMO_SIZE", 10)
    monkeypatch.setattr(categories, "_memo", {})
    assert categorize("Gehalt ACME", None, Decimal("100")) == "income"
    assert categorize("Gehalt ACME", None, Decimal("-100")) != "income"
    for n in range(25):
        categorize(f"shop {n}", None, Decimal("-1"))
        assert len(categories._memo) <= 10


def test_texts_that_differ_only_in_numbers_no_rule_names_share_one_answer() -> None:
    """The memo keys the keyword and brand answer by the text's words with the numbers no rule
    or brand uses blanked out: shop receipts with other reference numbers are one entry, and a
    number a brand's name holds ("7 eleven") still decides."""
    matter = categories._numbers_that_matter(categories.brands())
    assert matter is not None
    assert "7" in matter
    assert "4711" not in matter
    key = categories._words_key
    assert key(["tesco", "4711", "london"], False) == key(["tesco", "4712", "london"], False)
    assert key(["tesco", "4711", "london"], False) != key(["tesco", "london"], False)
    assert key(["7", "eleven"], False) != key(["8123", "eleven"], False)
    assert key(["tesco"], False) != key(["tesco"], True)


@pytest.mark.parametrize("seed", range(2))
def test_soups_whose_numbers_rules_and_brands_use_agree_with_the_reference(seed: int) -> None:
    """Keyword soups and brand names holding numbers, half of them numbers that some keyword or
    brand name uses, against the reference, with the memo warm from the same words before."""
    rng = random.Random(100 + seed)
    matter = sorted(categories._numbers_that_matter(categories.brands()) or ())
    numbered = [name for name in BRANDS if any(word.isdigit() for word in name.split(" "))]
    categories._memo.clear()
    for _ in range(3000):
        words = [
            rng.choice(matter) if rng.random() < 0.5 else str(rng.randint(0, 10**6))
            for _ in range(rng.randint(1, 3))
        ]
        words.insert(rng.randint(0, len(words)), rng.choice(numbered))
        if rng.random() < 0.5:
            words.insert(rng.randint(0, len(words)), keyword_soup(rng))
        text = " ".join(words)
        amount = Decimal(rng.choice(["-3.00", "12.00"]))
        assert categorize(text, None, amount) == reference(text, None, amount, None), text
