"""The payment checks a bank does first: against schwifty's own IBAN checks (a property test),
the currencies' minor units, the SEPA character set and TARGET2's closing days."""

from __future__ import annotations

import string
from datetime import date
from decimal import Decimal
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from bankhub.errors import DomainError
from bankhub.payments import validation
from bankhub.payments.validation import Problems, TransferInput

COUNTRIES = ["DE", "FR", "NL", "GB", "ES", "IT", "BE", "AT", "CH", "PL", "SE", "NO"]


def schwifty_accepts(value: str) -> bool:
    try:
        IBAN(value)
    except SchwiftyException:
        return False
    return True


def check(value: str) -> bool:
    problems = Problems()
    transfer = validation.check_transfer(
        problems,
        "$",
        TransferInput(creditor_name="A", amount="1", currency="EUR", creditor_iban=value),
    )
    return transfer is not None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_uppercase + string.digits, min_size=5, max_size=34))
def test_any_string_is_an_iban_for_bankhub_exactly_when_schwifty_says_so(value: str) -> None:
    assert check(value) == schwifty_accepts(value)


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(COUNTRIES))
    seed = draw(st.integers(min_value=0, max_value=2**32))
    return str(IBAN.random(country_code=country, random=Random(seed)))


@settings(max_examples=100, deadline=None)
@given(ibans(), st.integers(min_value=4, max_value=33), st.sampled_from(string.digits))
def test_generated_ibans_pass_and_one_changed_digit_fails_as_schwifty_says(
    iban: str, position: int, digit: str
) -> None:
    assert check(iban)
    assert check(" ".join(iban[i : i + 4] for i in range(0, len(iban), 4)).lower())
    if position < len(iban) and iban[position].isdigit() and iban[position] != digit:
        changed = iban[:position] + digit + iban[position + 1 :]
        assert check(changed) == schwifty_accepts(changed)
        assert not check(changed)  # mod 97 catches every single-digit change


@pytest.mark.parametrize(
    ("currency", "amount", "ok"),
    [
        ("EUR", "0.01", True),
        ("EUR", "0.001", False),
        ("JPY", "100", True),
        ("JPY", "100.5", False),
        ("KWD", "1.234", True),
        ("EUR", "0", False),
        ("EUR", "-5", False),
        ("EUR", "NaN", False),
        ("EUR", "1e3", True),
        ("XXQ", "1", False),
        ("eur", "1", False),
        ("EUR", "1000000000", False),
    ],
)
def test_amounts_at_the_currency_scale_and_positive(currency: str, amount: str, ok: bool) -> None:
    problems = Problems()
    transfer = validation.check_transfer(
        problems,
        "$",
        TransferInput(
            creditor_name="A",
            amount=amount,
            currency=currency,
            creditor_iban="DE89370400440532013000",
        ),
    )
    assert (transfer is not None) == ok, problems.found
    if transfer is not None and currency == "EUR":
        assert transfer.amount.as_tuple().exponent == -2
        assert transfer.amount == Decimal(amount)


def test_sepa_characters_are_transliterated_only_where_unambiguous() -> None:
    assert validation.sepa_text("Ångström Straße 5") == "Angstrom Strasse 5"
    assert validation.sepa_text("Łódź") == "Lodz"
    assert validation.sepa_text("Invoice #12") is None  # '#' has no SEPA form
    assert validation.sepa_text("東京") is None
    assert validation.sepa_text("a/b-c?d:e(f).g,h'i+j") == "a/b-c?d:e(f).g,h'i+j"


def test_every_problem_of_a_batch_is_listed_with_its_place() -> None:
    problems = Problems()
    transfers = [
        TransferInput("Good", "1.00", "EUR", creditor_iban="DE89370400440532013000"),
        TransferInput("Bad #", "1.00", "EUR", creditor_iban="DE00370400440532013000"),
        TransferInput("Other", "1.00", "USD", creditor_account="12345678", creditor_bic="DEUTDEFF"),
    ]
    validation.check_batch(problems, transfers, total=None)
    found = " ".join(problems.found)
    assert "`$.payments[1].creditor_name`" in found
    assert "`$.payments[1].creditor_iban`" in found
    assert "same currency" in found
    with pytest.raises(DomainError) as raised:
        problems.raise_any()
    assert raised.value.extra["problems"] == problems.found
    too_many = Problems()
    validation.check_batch(too_many, transfers[:1] * 1001, total=None)
    assert "at most 1000" in too_many.found[0]


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        ("2026-01-01", False),  # New Year's Day
        ("2026-04-03", False),  # Good Friday
        ("2026-04-06", False),  # Easter Monday
        ("2026-05-01", False),  # Labour Day
        ("2026-12-25", False),
        ("2026-12-26", False),  # a Saturday anyway
        ("2026-11-21", False),  # a Saturday
        ("2026-11-20", True),
        ("2026-12-24", True),
        ("2027-03-26", False),  # Good Friday 2027
        ("2027-03-29", False),  # Easter Monday 2027
    ],
)
def test_target2_closing_days(day: str, open_: bool) -> None:
    assert validation.is_target2_day(date.fromisoformat(day)) == open_


def test_execution_dates() -> None:
    today = date(2026, 11, 20)
    problems = Problems()
    assert validation.check_execution_date(problems, "2026-11-20", today, target2=True) == today
    assert validation.check_execution_date(problems, "2026-11-19", today, target2=True) is None
    assert validation.check_execution_date(problems, "2026-11-21", today, target2=True) is None
    assert "2026-11-23" in problems.found[-1]
    assert validation.check_execution_date(problems, "2026-11-21", today, target2=False)
    assert validation.check_execution_date(problems, "20.11.2026", today, target2=False) is None
    assert len(problems.found) == 3
