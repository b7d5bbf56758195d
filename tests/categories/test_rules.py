"""Rules as data: the bank's codes and merchant category codes, an app's own rules winning over
the defaults, and a rules file that breaks the schema refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bankhub import categories
from bankhub.categories import AppRule, RulesError, app_rules, categorize

OUT, IN = Decimal("-12.00"), Decimal("1200.00")


@pytest.mark.parametrize(
    ("meta", "amount", "expected"),
    [
        ({"gvc": "153"}, IN, "income"),  # SEPA Gutschrift Lohn, Gehalt, Rente
        ({"gvc": "805"}, OUT, "fees_and_charges"),  # Abschluss
        ({"bank_transaction_code": "PMNT/RCDT/SALA"}, IN, "income"),
        ({"bank_transaction_code": "ACMT/MDOP/CHRG"}, OUT, "fees_and_charges"),
        ({"bank_transaction_code": "ACMT/MDOP/INTR"}, IN, "income"),
        ({"bank_transaction_code": "ACMT/MDOP/INTR"}, OUT, "fees_and_charges"),
        ({"bank_transaction_code": "SECU/SETT/TRAD"}, OUT, "investments"),
        ({"trntype": "DIRECTDEP"}, IN, "income"),
        ({"trntype": "srvchg"}, OUT, "fees_and_charges"),
        ({"mcc": "5411"}, OUT, "food_and_dining"),
        ({"merchant_category_code": "4121"}, OUT, "auto_and_transport"),
        ({"sic": "7011"}, OUT, "travel"),
        ({"mcc": "0742"}, OUT, "pets"),
    ],
)
def test_the_banks_codes_decide_before_keywords(
    meta: dict[str, str], amount: Decimal, expected: str
) -> None:
    # the text alone says nothing (or something else): the code decides
    assert categorize("REF 4711 ABC", None, amount) == "uncategorized"
    assert categorize("REF 4711 ABC", None, amount, meta=meta) == expected


def test_a_code_that_only_says_how_money_moved_leaves_it_to_the_words() -> None:
    transfer = {"bank_transaction_code": "PMNT/ICDT/ESCT", "gvc": "116"}
    assert categorize("REWE Markt", None, OUT, meta=transfer) == "food_and_dining"
    assert categorize("REF 4711", None, OUT, meta=transfer) == "uncategorized"
    # a salary code on a debit (a reversal) is not income
    assert categorize("REF 4711", None, OUT, meta={"gvc": "153"}) == "uncategorized"


def test_the_memo_keeps_codes_apart() -> None:
    assert categorize("REF 99", None, IN, meta={"gvc": "153"}) == "income"
    assert categorize("REF 99", None, IN) == "uncategorized"


def test_an_apps_rules_win_over_the_defaults_and_the_banks_category() -> None:
    mine = app_rules(
        [
            AppRule("home", "rewe"),  # this app files its grocery shop under home
            AppRule("education", "nachhilfe*", "debit"),
            AppRule("gifts_and_donations", "taschengeld", "debit"),
        ]
    )
    assert categorize("REWE Markt 12", None, OUT) == "food_and_dining"
    assert categorize("REWE Markt 12", None, OUT, overrides=mine) == "home"
    assert categorize("REWE", None, OUT, "shopping", overrides=mine) == "home"
    assert categorize("Nachhilfestunden Mathe", None, OUT, overrides=mine) == "education"
    assert categorize("Nachhilfestunden Mathe", None, IN, overrides=mine) == "uncategorized"
    assert categorize("Taschengeld Mai", None, OUT, overrides=mine) == "gifts_and_donations"
    # what no app rule matches falls through to the defaults
    assert categorize("Gehalt Mai", None, IN, overrides=mine) == "income"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (AppRule("groceries", "rewe"), "not a category"),
        (AppRule("uncategorized", "rewe"), "not a category"),
        (AppRule("home", "  ** "), "no letters or digits"),
    ],
)
def test_a_broken_app_rule_is_refused(rule: AppRule, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        app_rules([rule])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keywords: [{category: groceries, words: [rewe]}]\n", "groceries"),
        ("keywords: [{category: home, words: [Rewe]}]\n", "not lower case"),
        ("keywords: [{category: home, words: [rewe], sign: out}]\n", "sign"),
        ("keywords: []\ncodes: [{category: income, gvc: ['15']}]\n", "three digits"),
        ("keywords: []\ncodes: [{category: income, camt: [PMNT/RCDT]}]\n", "DOMN/FMLY/SUBF"),
        ("keywords: []\nmcc: [{category: travel, codes: ['70-71']}]\n", "NNNN"),
        ("keywords: []\ncolour: red\n", "colour"),
    ],
)
def test_a_rules_file_that_breaks_the_schema_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError, match=message):
        categories._load(path)


@pytest.mark.parametrize(
    ("description", "amount", "expected"),
    [
        # French card lines glue the town to the merchant's last word
        ("120922 CB****1111 LE PETIT PRIMEUR69LYON", OUT, "food_and_dining"),
        ("051022 CB****1111 FROMAGERIE DUPON75PARIS", OUT, "food_and_dining"),
        ("PRLV SEPA APRR 1234567 092022", OUT, "auto_and_transport"),
        ("VIR FRANCE TRAVAIL ALLOCATION 09/2022", IN, "income"),
        # an online-banking transfer is not an internet bill
        ("INTERNET-Überweisung Max Muster", OUT, "transfer"),
        # car hire names "rent" and is not a home expense
        ("AVIS RENT A CAR LONDON GBR", OUT, "travel"),
        ("SUNRISE GUEST HOUSE KNYSNA ZA", OUT, "travel"),
        ("DIRECT DEBIT AMEX CRCARDPMT", OUT, "transfer"),
        ("Stromkosten 05/2024 Kd 4711", OUT, "bills_and_utilities"),
        ("Entgeltabrechnung 03/2024", OUT, "fees_and_charges"),
        # Dutch: interest on a loan is paid, not earned
        ("RENTE LENING 12345", OUT, "loans"),
        ("ALBERT HEIJN 1234 AMSTERDAM", OUT, "food_and_dining"),
        ("DEBIT CARD PURCHASE WAL-MART SUPERCENTER #123", OUT, "shopping"),
    ],
)
def test_families_seen_in_real_exports(description: str, amount: Decimal, expected: str) -> None:
    assert categorize(description, None, amount) == expected


def test_the_shipped_rules_cover_every_category_and_three_languages() -> None:
    named = {category.value for category, _, _ in categories._RULES}
    assert named == {c.value for c in categories.Category} - {"uncategorized"}
    words = {w for _, _, keys in categories._RULES for w in keys}
    assert {"gehalt", "salary", "luong", "tien dien", "miete", "rent"} <= words


def test_an_ofx_sic_code_reaches_the_categorizer() -> None:
    from bankhub.statements import ofx
    from tests.statements.corpus import read

    data = read("ofx/checking.ofx")
    # the second transaction: "AUTOMATIC WITHDRAWAL, ELECTRIC BILL"; a card issuer's SIC says
    # the payee is a utility (4900)
    marked = data.replace(b"<TRNTYPE>DEBIT", b"<TRNTYPE>DEBIT\n<SIC>4900", 1)
    plain = ofx.parse(data).accounts[0].transactions[1]
    coded = ofx.parse(marked).accounts[0].transactions[1]
    assert coded.meta is not None
    assert coded.meta["sic"] == "4900"
    # the file's own text names the bill; a payee no keyword knows leaves the code to decide
    args = ("WEB(S) 20110404", None, coded.amount)
    assert categorize(*args, meta=plain.meta) == "uncategorized"
    assert categorize(*args, meta=coded.meta) == "bills_and_utilities"
