"""The category taxonomy and the rule-based categorizer."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bankhub.categories import Category, categorize, normalize
from bankhub.connectors.base import TransactionRecord
from bankhub.connectors.sandbox.history import Profile, ledger

SEED_EXAMPLE = (
    "GD THE QUA POS SO THE 422149...0052 NGAY 26/03/2017 TAI UBER VN MAR27 R5HKO HE "
    "help.uber.com NL APPCODE 579124 TID / FT17086406712347"
)
REQUIRED = {
    "auto_and_transport",
    "bills_and_utilities",
    "education",
    "entertainment",
    "fees_and_charges",
    "food_and_dining",
    "gifts_and_donations",
    "health_and_fitness",
    "home",
    "income",
    "investments",
    "kids",
    "loans",
    "personal_care",
    "pets",
    "shopping",
    "taxes",
    "transfer",
    "travel",
    "uncategorized",
}


def test_taxonomy_has_the_required_members() -> None:
    assert {c.value for c in Category} >= REQUIRED


def test_seed_example_is_transport() -> None:
    assert categorize(SEED_EXAMPLE, None, Decimal("-120000")) == "auto_and_transport"


@pytest.mark.parametrize(
    ("description", "merchant", "amount", "expected"),
    [
        ("Gehalt 03/2024 Musterfirma GmbH", None, "3250.00", "income"),
        ("LƯƠNG THÁNG 03/2024 - CÔNG TY ABC", None, "25000000", "income"),
        ("VIR SEPA RECU /DE ACME /MOTIF SALAIRE 03/2024", None, "2600.00", "income"),
        ("ACME CORP PAYROLL DIRECT DEP PPD ID 123", None, "4800.00", "income"),
        ("CB UBER EATS PARIS 14/03/25", "Uber Eats", "-23.50", "food_and_dining"),
        ("CARD PAYMENT TO TFL TRAVEL CH ON 14-03-2024", None, "-2.80", "auto_and_transport"),
        ("GRAB VN HO CHI MINH", "Grab", "-45000", "auto_and_transport"),
        ("Shell Station//Berlin 14.03.2025", "Shell", "-61.20", "auto_and_transport"),
        ("PRET A MANGER LONDON GB", None, "-6.45", "food_and_dining"),
        ("REWE Markt GmbH//Berlin", "REWE", "-54.10", "food_and_dining"),
        ("Lieferando.de//Berlin", None, "-28.90", "food_and_dining"),
        ("Kontoführungsentgelt 03/2024", None, "-4.90", "fees_and_charges"),
        ("PHÍ DUY TRÌ DỊCH VỤ SMS BANKING", None, "-11000", "fees_and_charges"),
        ("FRAIS TENUE DE COMPTE", None, "-2.00", "fees_and_charges"),
        ("Dauerauftrag Miete 03/2024 Hausverwaltung", None, "-1050.00", "home"),
        ("CHUYỂN TIỀN THUÊ NHÀ THÁNG 03/2024", None, "-7000000", "home"),
        ("THANH TOAN TIEN DIEN EVN HCMC KY 03/2024", None, "-650000", "bills_and_utilities"),
        ("PRLV SEPA EDF CLIENTS PARTICULIERS", None, "-72.00", "bills_and_utilities"),
        ("DIRECT DEBIT LB CAMDEN COUNCIL TAX", None, "-155.00", "taxes"),
        ("Finanzamt Berlin Einkommensteuer 2023", None, "-812.00", "taxes"),
        ("AMAZON PAYMENTS EUROPE S.C.A.", "Amazon", "-34.99", "shopping"),
        ("NETFLIX.COM", None, "-13.99", "entertainment"),
        ("Apotheke am Markt//Berlin", None, "-12.40", "health_and_fitness"),
        ("Friseur Haarwerk//Berlin", None, "-38.00", "personal_care"),
        ("Fressnapf//Berlin", None, "-22.00", "pets"),
        ("Kita Sonnenschein Beitrag", None, "-320.00", "kids"),
        ("HOC PHI HOC KY 2 TRUONG DAI HOC", None, "-9000000", "education"),
        ("Spende UNICEF", None, "-50.00", "gifts_and_donations"),
        ("Trade Republic Sparplan ETF", None, "-200.00", "investments"),
        ("Darlehen Tilgung Rate 12", None, "-480.00", "loans"),
        ("LUFTHANSA//Frankfurt", None, "-312.00", "travel"),
        ("Überweisung an Anna Schulz", None, "-40.00", "transfer"),
        ("CHUYEN TIEN DEN NGUYEN VAN BINH FT123", None, "-500000", "transfer"),
        ("Kreditkartenabrechnung 02/2025 Karte 1234", None, "-431.20", "transfer"),
        ("something entirely unknown", None, "-5.00", "uncategorized"),
    ],
)
def test_rules(description: str, merchant: str | None, amount: str, expected: str) -> None:
    assert categorize(description, merchant, Decimal(amount)) == expected


def test_rules_are_sign_aware() -> None:
    assert categorize("Gehalt zurück an Arbeitgeber", None, Decimal("-10")) != "income"
    assert categorize("Miete Garage von Mieter", None, Decimal("100")) != "home"
    assert categorize("Zinsgutschrift Tagesgeld", None, Decimal("1.20")) == "income"


def test_whole_words_only() -> None:
    # "phi" (a fee in Vietnamese) must not fire inside "phim" (film), nor "tax" inside "taxi"
    assert categorize("RAP PHIM", None, Decimal("-1")) == "uncategorized"
    assert categorize("TAXI BERLIN", None, Decimal("-1")) == "auto_and_transport"


def test_connector_category_wins_when_valid() -> None:
    assert categorize("REWE", None, Decimal("-1"), "shopping") == "shopping"
    assert categorize("REWE", None, Decimal("-1"), "Groceries") == "food_and_dining"
    assert categorize("nothing", None, Decimal("-1"), None) == "uncategorized"


def test_the_counterparty_name_is_read_with_the_merchant_and_text() -> None:
    # A statement names the payee apart from the purpose, which often says nothing useful.
    netflix = "Netflix International B.V."
    assert categorize("Rechnung 4711", None, Decimal("-12.99"), None, netflix) == "entertainment"
    assert categorize("Rechnung 4711", None, Decimal("-12.99")) == "uncategorized"
    assert categorize("Rechnung 4711", "NETFLIX", Decimal("-12.99"), None, netflix) == (
        "entertainment"
    )
    assert categorize("Nachzahlung 2024", None, Decimal("-80"), None, "Finanzamt") == "taxes"
    # the sign rules hold for it too: salary words name income only on a credit
    assert categorize("Gutschrift", None, Decimal("1200"), None, "ACME Lohn und Gehalt") == "income"
    assert categorize("Lohn", None, Decimal("-1200"), None, "ACME Lohn und Gehalt") != "income"
    # the bank's own category still wins
    assert categorize("Rechnung", None, Decimal("-1"), "shopping", netflix) == "shopping"


def test_normalize_folds_case_and_accents() -> None:
    assert normalize("ĐÀ NẴNG Überweisung Straße") == "da nang uberweisung strasse"


def test_every_sandbox_transaction_gets_a_member() -> None:
    # what categorizing costs a row is measured in bench/ingest.py against the machine, not here
    valid = {c.value for c in Category}
    rows: list[TransactionRecord] = []
    for country, currency in [("VN", "VND"), ("DE", "EUR"), ("GB", "GBP"), ("US", "USD")]:
        book = ledger(Profile("s", 5, currency, country, "user_good", date(2025, 3, 14)))
        rows.extend(t for txs in book.transactions.values() for t in txs)
    found = [categorize(t.description, t.merchant, t.amount, t.category) for t in rows]
    assert set(found) <= valid
    assert found.count("uncategorized") < len(found) * 0.05


def test_docs_describe_every_category() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "categories.md").read_text("utf-8")
    for category in Category:
        assert f"`{category.value}`" in docs
