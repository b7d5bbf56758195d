"""The transaction category taxonomy and the rule-based categorizer applied on ingest.

Every transaction the hub stores carries exactly one :class:`Category`. A connector that knows
the category (its bank classifies transactions) wins when it names a member of the taxonomy;
otherwise keyword rules read the merchant and the description. See ``docs/categories.md``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml


class Category(StrEnum):
    """What a transaction was for. Values are the strings the API returns."""

    AUTO_AND_TRANSPORT = "auto_and_transport"
    """Fuel, public transport, taxis and ride-hailing, parking, tolls, car costs."""
    BILLS_AND_UTILITIES = "bills_and_utilities"
    """Electricity, gas, water, internet, phone, TV licence."""
    EDUCATION = "education"
    """Tuition, schools, universities, courses."""
    ENTERTAINMENT = "entertainment"
    """Streaming, cinema, concerts, games, events."""
    FEES_AND_CHARGES = "fees_and_charges"
    """Bank fees, account charges, interest charged, penalties."""
    FOOD_AND_DINING = "food_and_dining"
    """Groceries, restaurants, cafés, food delivery."""
    GIFTS_AND_DONATIONS = "gifts_and_donations"
    """Charity donations and gifts."""
    HEALTH_AND_FITNESS = "health_and_fitness"
    """Pharmacies, doctors, hospitals, gyms, health insurance."""
    HOME = "home"
    """Rent, home furnishing and DIY, household services."""
    INCOME = "income"
    """Salary, wages, interest and other money earned."""
    INVESTMENTS = "investments"
    """Brokers, funds, securities, crypto exchanges."""
    KIDS = "kids"
    """Childcare, toys, things for children."""
    LOANS = "loans"
    """Loan and mortgage repayments."""
    PERSONAL_CARE = "personal_care"
    """Hairdressers, beauty, drugstores, spas."""
    PETS = "pets"
    """Pet food and supplies, vets."""
    SHOPPING = "shopping"
    """Online and high-street shopping: clothes, electronics, marketplaces."""
    TAXES = "taxes"
    """Income tax, council tax, other taxes paid to the state."""
    TRANSFER = "transfer"
    """Money moved between people or own accounts, card repayments."""
    TRAVEL = "travel"
    """Flights, hotels, holiday rentals, travel agencies."""
    UNCATEGORIZED = "uncategorized"
    """Nothing matched."""


_VALID = frozenset(c.value for c in Category)
Sign = Literal["credit", "debit", "any"]
RULES_FILE = Path(__file__).with_name("category_rules.yaml")
BRANDS_FILE = Path(__file__).with_name("merchant_brands.tsv")


class RulesError(ValueError):
    """A rules file (or an app's rule) breaks the schema; the message says where."""


class _KeywordSpec(msgspec.Struct, forbid_unknown_fields=True):
    category: Category
    words: list[str]
    sign: Sign = "any"


class _CodeSpec(msgspec.Struct, forbid_unknown_fields=True):
    category: Category
    sign: Sign = "any"
    camt: list[str] = []
    gvc: list[str] = []
    ofx: list[str] = []


class _MccSpec(msgspec.Struct, forbid_unknown_fields=True):
    category: Category
    codes: list[str]


class _RulesSpec(msgspec.Struct, forbid_unknown_fields=True):
    keywords: list[_KeywordSpec]
    codes: list[_CodeSpec] = []
    mcc: list[_MccSpec] = []


def _load(path: Path) -> _RulesSpec:
    try:
        spec = msgspec.convert(yaml.safe_load(path.read_text(encoding="utf-8")), _RulesSpec)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise RulesError(f"{path.name}: {exc}") from None
    for rule in spec.keywords:
        for word in rule.words:
            if not _TOKEN.findall(word.strip("*")) or normalize(word) != word:
                raise RulesError(
                    f"{path.name}: keyword {word!r} is not lower case, unaccented text"
                )
    for code_rule in spec.codes:
        for camt in code_rule.camt:
            if not re.fullmatch(r"(?:[A-Z]{4}|\*)/(?:[A-Z]{4}|\*)/(?:[A-Z]{4}|\*)", camt):
                raise RulesError(f"{path.name}: camt code {camt!r} is not DOMN/FMLY/SUBF")
        for gvc in code_rule.gvc:
            if not re.fullmatch(r"\d{3}", gvc):
                raise RulesError(f"{path.name}: GVC {gvc!r} is not three digits")
    for mcc_rule in spec.mcc:
        for code in mcc_rule.codes:
            if not re.fullmatch(r"\d{4}(?:-\d{4})?", code):
                raise RulesError(f"{path.name}: MCC {code!r} is not NNNN or NNNN-NNNN")
    return spec


_TOKEN = re.compile(r"[a-z0-9]+")
_FOLD = str.maketrans({"đ": "d", "Đ": "D", "ß": "ss", "ø": "o", "æ": "ae", "œ": "oe"})


def normalize(text: str) -> str:
    """Lower case without accents, the form the rules are written against."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def brand_key(text: str) -> str:
    """A normalized text as the words the brand table is keyed by ("Carrefour-Market" →
    "carrefour market")."""
    return " ".join(_TOKEN.findall(text))


class Brands:
    """Chains and what they sell, from the OpenStreetMap name-suggestion-index
    (``merchant_brands.tsv``, built by ``scripts/build_merchant_brands.py``; see
    docs/categories.md). Names are matched as whole words in one pass over a text's words:
    at each word, the longest brand name that starts there; the first word that starts one
    wins (the merchant and counterparty come before the description)."""

    def __init__(self, lines: list[str]) -> None:
        names: dict[str, Category] = {}
        #: first word → the names of several words that start with it, longest first
        multi: dict[str, list[tuple[tuple[str, ...], Category]]] = {}
        for line in lines:
            if not line.strip() or line.startswith("#"):
                continue
            key, category, _countries = line.rstrip("\n").split("\t")
            if key != brand_key(key) or category not in _VALID:
                raise RulesError(f"{BRANDS_FILE.name}: bad row {line!r}")
            words = key.split(" ")
            if len(words) == 1:
                names[key] = Category(category)
            else:
                multi.setdefault(words[0], []).append((tuple(words[1:]), Category(category)))
        self.names = names
        self.multi = {
            first: tuple(sorted(rest, key=lambda r: -len(r[0]))) for first, rest in multi.items()
        }
        #: the words a brand name starts with
        self.firsts = frozenset(names).union(multi)

    @classmethod
    def load(cls, path: Path = BRANDS_FILE) -> Brands:
        return cls(path.read_text(encoding="utf-8").splitlines())

    def best(self, text: str) -> Category | None:
        """The category of the first brand named in ``text`` (normalized), if any."""
        tokens = _TOKEN.findall(text)
        # most texts name no brand: one set intersection says so without a walk
        if self.firsts.isdisjoint(tokens):
            return None
        names, multi = self.names, self.multi
        for at, token in enumerate(tokens):
            longer = multi.get(token)
            if longer is not None:
                for rest, category in longer:
                    if tuple(tokens[at + 1 : at + 1 + len(rest)]) == rest:
                        return category
            found = names.get(token)
            if found is not None:
                return found
        return None


_brands: Brands | None = None


def brands() -> Brands:
    """The shipped brand table, read on first use (most processes that import this module
    never categorize)."""
    global _brands
    if _brands is None:
        _brands = Brands.load()
    return _brands


_SPEC = _load(RULES_FILE)
#: (category, sign it applies to, keyword patterns); earlier rules win over later ones
_RULES: tuple[tuple[Category, Sign, tuple[str, ...]], ...] = tuple(
    (rule.category, rule.sign, tuple(rule.words)) for rule in _SPEC.keywords
)


class Keywords:
    """Keyword rules compiled for lookup by whole words (so "phi" never fires inside "phim",
    nor "tax" inside "taxi"); ``word*`` and ``*word`` become prefix and suffix tables for
    compound words ("Kontoführungsentgelt"). The defaults and each app's own rules are one
    of these each."""

    def __init__(self, rules: tuple[tuple[Category, Sign, tuple[str, ...]], ...]) -> None:
        self.signs = tuple(sign for _, sign, _ in rules)
        self.categories = tuple(category for category, _, _ in rules)
        phrases: dict[str, int] = {}
        prefixes: dict[str, int] = {}
        suffixes: dict[str, int] = {}
        starters: set[str] = set()
        longest = 1
        for index, (_, _, keywords) in enumerate(rules):
            for keyword in keywords:
                if keyword.endswith("*"):
                    prefixes.setdefault(keyword[:-1], index)
                elif keyword.startswith("*"):
                    suffixes.setdefault(keyword[1:], index)
                else:
                    words = _TOKEN.findall(keyword)
                    phrases.setdefault(" ".join(words), index)
                    if len(words) > 1:
                        starters.add(words[0])
                        longest = max(longest, len(words))
        self.phrases, self.prefixes, self.suffixes = phrases, prefixes, suffixes
        self.starters, self.longest = frozenset(starters), longest
        self.prefix_keys, self.suffix_keys = tuple(prefixes), tuple(suffixes)
        self.single = frozenset(key for key in phrases if " " not in key)
        #: the phrases of several words, by their first word
        self.multi: dict[str, tuple[tuple[str, int], ...]] = {
            starter: tuple(
                (f" {key} ", index)
                for key, index in phrases.items()
                if key.startswith(starter + " ")
            )
            for starter in starters
        }
        affixes = (*self.prefix_keys, *self.suffix_keys)
        #: a text without any of these in it has no token that starts or ends with a prefix
        #: or suffix key (a cheap screen before testing each token)
        self.affix_screen = tuple(
            key
            for key in sorted(set(affixes))
            if not any(other != key and other in key for other in affixes)
        )

    def best(self, text: str, credit: bool) -> Category | None:
        """The first rule (in priority order) with a keyword in ``text`` (normalized) that
        applies to the amount's sign."""
        tokens = _TOKEN.findall(text)
        words = set(tokens)
        # Which rules fire does not depend on where or how often a keyword occurs: the
        # candidates are a set, and the best is the lowest index among those for the sign.
        phrases = self.phrases
        candidates = [phrases[word] for word in words.intersection(self.single)]
        starters = words.intersection(self.starters)
        if starters:
            # tokens hold no spaces: " a b " is in the spaced sequence exactly when a, b follow
            spaced = f" {' '.join(tokens)} "
            for starter in starters:
                candidates.extend(i for phrase, i in self.multi[starter] if phrase in spaced)
        for screen in self.affix_screen:
            if screen in text:
                for token in words:
                    if token.startswith(self.prefix_keys):
                        candidates.extend(
                            i for key, i in self.prefixes.items() if token.startswith(key)
                        )
                    if token.endswith(self.suffix_keys):
                        candidates.extend(
                            i for key, i in self.suffixes.items() if token.endswith(key)
                        )
                break
        signs, sign = self.signs, "credit" if credit else "debit"
        best = min((i for i in candidates if signs[i] in ("any", sign)), default=None)
        return self.categories[best] if best is not None else None


_DEFAULT = Keywords(_RULES)
# the default tables under their own names, for the tests that walk them
_SIGNS, _CATEGORIES = _DEFAULT.signs, _DEFAULT.categories
_PHRASES, _LONGEST = _DEFAULT.phrases, _DEFAULT.longest
_PREFIXES, _SUFFIXES = _DEFAULT.prefixes, _DEFAULT.suffixes


def _camt_pattern(code: str) -> re.Pattern[str]:
    return re.compile("/".join("[A-Z]{4}" if p == "*" else p for p in code.split("/")))


#: the bank's own codes: (category, sign, camt patterns, GVCs, OFX TRNTYPEs), in order
_CODES = tuple(
    (r.category, r.sign, tuple(_camt_pattern(c) for c in r.camt), frozenset(r.gvc),
     frozenset(r.ofx))
    for r in _SPEC.codes
)  # fmt: skip


def _mcc_table() -> dict[int, Category]:
    table: dict[int, Category] = {}
    for rule in _SPEC.mcc:
        for code in rule.codes:
            low, _, high = code.partition("-")
            for value in range(int(low), int(high or low) + 1):
                table.setdefault(value, rule.category)
    return table


_MCC = _mcc_table()


def codes_of(meta: Mapping[str, Any] | None) -> tuple[str, str, str, str]:
    """The codes a transaction's source gave that the rules read: camt BkTxCd, GVC, OFX
    TRNTYPE and the merchant category code (empty where absent)."""
    if not meta:
        return "", "", "", ""
    mcc = meta.get("mcc") or meta.get("merchant_category_code") or meta.get("sic") or ""
    return (
        str(meta.get("bank_transaction_code") or ""),
        str(meta.get("gvc") or ""),
        str(meta.get("trntype") or "").upper(),
        str(mcc).strip(),
    )


def _by_code(codes: tuple[str, str, str, str], credit: bool) -> Category | None:
    camt, gvc, trntype, mcc = codes
    sign = "credit" if credit else "debit"
    if camt or gvc or trntype:
        for category, applies, patterns, gvcs, trntypes in _CODES:
            if applies not in ("any", sign):
                continue
            if (
                gvc in gvcs
                or trntype in trntypes
                or (camt and any(p.fullmatch(camt) for p in patterns))
            ):
                return category
    if mcc.isdigit() and len(mcc) <= 4:
        return _MCC.get(int(mcc))
    return None


class AppRule(msgspec.Struct, frozen=True):
    """A rule an app adds: transactions whose text holds ``keyword`` (a word or phrase, or
    ``word*``/``*word``) and whose amount has ``sign`` get ``category``."""

    category: str
    keyword: str
    sign: Sign = "any"


def app_rules(rules: list[AppRule]) -> Keywords:
    """An app's rules, compiled; a rule that names no taxonomy member or no words is refused.
    Earlier rules win, as in the defaults."""
    compiled: list[tuple[Category, Sign, tuple[str, ...]]] = []
    for rule in rules:
        if rule.category not in _VALID or rule.category == Category.UNCATEGORIZED:
            raise RulesError(f"{rule.category!r} is not a category")
        keyword = normalize(rule.keyword.strip())
        core = " ".join(_TOKEN.findall(keyword.strip("*")))
        if not core:
            raise RulesError(f"the keyword {rule.keyword!r} has no letters or digits")
        if keyword.endswith("*") and " " not in core:
            keyword = core + "*"
        elif keyword.startswith("*") and " " not in core:
            keyword = "*" + core
        else:
            keyword = core
        compiled.append((Category(rule.category), rule.sign, (keyword,)))
    return Keywords(tuple(compiled))


#: a memo of :func:`categorize` (descriptions repeat heavily: the same shop, the same standing
#: order), cleared when it holds this many answers. Two kinds of key: everything ``categorize``
#: reads, exactly; and, for the keyword and brand rules, the text's words with the numbers
#: that no rule or brand uses blanked out (see :func:`_words_key`)
MEMO_SIZE = 65_536
_memo: dict[tuple[Any, ...], str] = {}
#: the brand table the digit words below were taken from, and those words (None: numbers can
#: matter to a prefix or suffix rule, so texts are not keyed by their words)
_digit_words: tuple[Brands | None, frozenset[str] | None] = (None, None)


def _numbers_that_matter(table: Brands) -> frozenset[str] | None:
    """The words of digits only that a default keyword or a brand name contains; None when a
    prefix or suffix key is digits only (then a number could match a rule in part)."""
    if any(key.isdigit() for key in (*_DEFAULT.prefix_keys, *_DEFAULT.suffix_keys)):
        return None
    words = {word for phrase in _DEFAULT.phrases for word in phrase.split(" ")}
    words.update(table.names)
    words.update(table.multi)
    for rest in table.multi.values():
        for names, _ in rest:
            words.update(names)
    return frozenset(word for word in words if word.isdigit())


def _words_key(tokens: list[str], credit: bool) -> tuple[Any, ...] | None:
    """The key under which texts share their keyword and brand answer: the words in order,
    each number that no keyword or brand name uses blanked out. Those rules compare whole
    words only (a number no rule names matches none of them, and a blank keeps the words
    around it apart as the number did), so every text with the same key gets the same answer:
    "CARD PAYMENT TESCO 4711 LONDON" and "... 4712 LONDON" are categorized once."""
    global _digit_words
    table = brands()
    if _digit_words[0] is not table:
        _digit_words = (table, _numbers_that_matter(table))
    matter = _digit_words[1]
    if matter is None:
        return None
    return (
        "words",
        credit,
        tuple("" if word.isdigit() and word not in matter else word for word in tokens),
    )


def _remember(key: tuple[Any, ...], found: str) -> str:
    if len(_memo) >= MEMO_SIZE:
        _memo.clear()
    _memo[key] = found
    return found


def categorize(
    description: str,
    merchant: str | None,
    amount: Decimal,
    connector_category: str | None = None,
    counterparty: str | None = None,
    *,
    meta: Mapping[str, Any] | None = None,
    overrides: Keywords | None = None,
) -> str:
    """The category of one transaction: always a :class:`Category` value.

    In this order: an app's own rules (``overrides``) that match; a ``connector_category``
    that is a member of the taxonomy; the bank's own transaction code or the merchant category
    code in ``meta`` when a rule names it; then the first keyword rule (in priority order) with
    a keyword in the merchant, the counterparty's name or the description, among the rules
    that apply to the amount's sign (income only for credits; rent, bills, fees, loans only
    for debits). Nothing matching gives ``uncategorized``.
    """
    credit = amount > 0
    named = _named(merchant, counterparty)
    if overrides is not None:
        mine = overrides.best(normalize(f"{named} {description}" if named else description), credit)
        if mine is not None:
            return mine.value
    codes = codes_of(meta)
    key = (description, merchant, credit, connector_category, counterparty, codes)
    found = _memo.get(key)
    if found is None:
        found = _remember(key, _categorize(description, named, credit, connector_category, codes))
    return found


def _named(merchant: str | None, counterparty: str | None) -> str | None:
    """Merchant and counterparty as one text, each once (statement files often give both)."""
    if not counterparty or (merchant and counterparty.casefold() in merchant.casefold()):
        return merchant
    if not merchant or merchant.casefold() in counterparty.casefold():
        return counterparty
    return f"{merchant} {counterparty}"


def _categorize(
    description: str,
    merchant: str | None,
    credit: bool,
    connector_category: str | None,
    codes: tuple[str, str, str, str] = ("", "", "", ""),
) -> str:
    if connector_category:
        known = connector_category.strip().lower()
        if known in _VALID:
            return known
    by_code = _by_code(codes, credit) if any(codes) else None
    if by_code is not None:
        return by_code.value
    text = normalize(f"{merchant} {description}" if merchant else description)
    words = _words_key(_TOKEN.findall(text), credit)
    if words is not None:
        found = _memo.get(words)
        if found is not None:
            return found
    best = _DEFAULT.best(text, credit)
    if best is None and not credit:
        # After every keyword rule, so that a rule's specific merchant or word wins; debits
        # only: a chain that pays money in is refunding or paying wages, neither of which is
        # what it sells.
        best = brands().best(text)
    answer = best.value if best is not None else Category.UNCATEGORIZED.value
    return _remember(words, answer) if words is not None else answer
