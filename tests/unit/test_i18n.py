"""The connect page's language: the partner's, else the browser's (q-values), else the bank's
country's, else English; and numbers and dates as each language writes them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bankhub import i18n


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("vi", "vi"),
        ("vi-VN,vi;q=0.9,en-US;q=0.8,en;q=0.7", "vi"),
        ("de-DE", "de"),  # a region alone still names its language
        ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"),
        # q-values, not the order written, say what the browser prefers
        ("en;q=0.4, ms;q=0.9, de;q=0.6", "ms"),
        ("ja, zh-CN;q=0.9, de;q=0.1", "de"),
        # q=0 is "not acceptable"
        ("de;q=0, fr;q=0.2", "fr"),
        ("ja, zh", None),
        ("*", None),
        ("", None),
        (None, None),
        ("de;q=banana, vi;q=0.5", "vi"),
    ],
)
def test_the_browser_language_is_negotiated_with_q_values(
    header: str | None, expected: str | None
) -> None:
    assert i18n.from_browser(header) == expected


def test_equal_q_values_keep_the_order_written() -> None:
    assert i18n.accepted("fr;q=0.5, de;q=0.5, vi") == ["vi", "fr", "de"]


def test_an_overlong_header_is_read_only_so_far() -> None:
    header = ",".join(["ja"] * 1000) + ",de"
    assert i18n.from_browser(header) is None


@pytest.mark.parametrize(
    ("token", "header", "country", "expected"),
    [
        ("de", "vi", "VN", "de"),  # the partner's choice first
        (None, "fr", "VN", "fr"),  # then the browser's
        (None, "ja", "VN", "vi"),  # then the bank's country's
        (None, None, "DE", "de"),
        (None, None, "my", "ms"),
        (None, None, "JP", "en"),  # then English
        (None, None, None, "en"),
    ],
)
def test_the_session_language_is_chosen_in_order(
    token: str | None, header: str | None, country: str | None, expected: str
) -> None:
    assert i18n.choose(token, header, country) == expected


@pytest.mark.parametrize(
    ("given", "expected"), [("de", "de"), ("de-DE", "de"), ("vi_VN", "vi"), (" FR ", "fr")]
)
def test_a_token_locale_is_one_of_the_supported(given: str, expected: str) -> None:
    assert i18n.supported(given) == expected


@pytest.mark.parametrize("given", ["ja", "xx", "", "de-", "en-GB-oxendict-" * 3, "<script>"])
def test_another_token_locale_is_refused_naming_the_supported(given: str) -> None:
    with pytest.raises(i18n.UnsupportedLocale, match="choose one of en, vi, de, fr, ms"):
        i18n.supported(given)


@pytest.mark.parametrize(
    ("locale", "value", "currency", "expected"),
    [
        ("de", "1234.56", "EUR", "1.234,56\xa0€"),
        ("fr", "1234.56", "EUR", "1\u202f234,56\xa0€"),
        ("vi", "1234567", "VND", "1.234.567\xa0₫"),
        ("en", "12.50", "EUR", "€12.50"),
        ("ms", "1234.5", "MYR", "RM1,234.50"),
        ("de", "-0.01", None, "-0,01"),
    ],
)
def test_amounts_are_written_as_the_language_writes_them(
    locale: str, value: str, currency: str | None, expected: str
) -> None:
    assert i18n.amount(Decimal(value), currency, locale) == expected


def test_an_amount_keeps_every_digit_of_its_decimal() -> None:
    # a float would print 0.30000000000000004 or round 2.675 down
    assert i18n.amount(Decimal("2.675"), None, "de") == "2,675"
    assert i18n.amount(Decimal("12345678901234.37"), "EUR", "de") == "12.345.678.901.234,37\xa0€"


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de", "7. Dezember 2026"),
        ("fr", "7 décembre 2026"),
        ("vi", "7 tháng 12, 2026"),
        ("ms", "7 Disember 2026"),
        ("en", "December 7, 2026"),
    ],
)
def test_dates_are_written_as_the_language_writes_them(locale: str, expected: str) -> None:
    assert i18n.day(date(2026, 12, 7), locale) == expected


def test_each_language_is_named_in_itself() -> None:
    names = dict((code, i18n.language_name(code)) for code in i18n.SUPPORTED)
    assert names == {
        "en": "English",
        "vi": "Tiếng Việt",
        "de": "Deutsch",
        "fr": "Français",
        "ms": "Melayu",
    }
