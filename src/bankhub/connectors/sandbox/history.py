"""Synthetic, deterministic account history for the sandbox banks.

Every day's transactions come from a random stream seeded by the institution's seed, the username
and the date, so a day reads the same whatever "today" is: moving the clock forward adds new days
without rewriting old ones. Pending items carry their own bank id and are replaced by a booked one
with a new id when they book, as real banks do.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    TransactionRecord,
    TransactionStatus,
)
from bankhub.connectors.sandbox.locales import (
    ZERO_DECIMAL_CURRENCIES,
    Locale,
    Merchant,
    locale_for,
)

CURRENT, SAVINGS, CARD = "current", "savings", "card"
_CARD_KINDS = frozenset({"dining", "fuel"})  # a tip or a fuel pre-authorisation books differently

_ACCOUNT_NAMES = {
    "VN": ("Tài khoản thanh toán", "Tài khoản tiết kiệm", "Thẻ tín dụng Visa"),
    "DE": ("Girokonto", "Tagesgeld", "Kreditkarte Visa"),
    "FR": ("Compte chèques", "Livret A", "Carte Visa Premier"),
    "US": ("Everyday Checking", "Savings", "Rewards Credit Card"),
    "GB": ("Current Account", "Easy Access Saver", "Credit Card"),
    "MY": ("Akaun Semasa", "Akaun Simpanan", "Kad Kredit Visa"),
}


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything the history of one sandbox login depends on; equal profiles, equal history."""

    slug: str
    seed: int
    currency: str
    country: str
    username: str
    today: date
    history_days: int = 730
    #: bumped on every reconnect for banks that re-mint their ids (user_remint)
    epoch: int = 0
    #: exactly this many transactions in the window (user_big)
    exact_total: int | None = None
    #: whether the last two days show pending card payments
    pending: bool = False
    #: the date of each unattended refresh so far (user_dynamic)
    refresh_dates: tuple[date, ...] = ()


@dataclass(frozen=True, slots=True)
class Ledger:
    """The accounts of a login and their transactions, keyed by account bank id."""

    accounts: tuple[AccountRecord, ...]
    transactions: Mapping[str, tuple[TransactionRecord, ...]] = field(default_factory=dict)


@lru_cache(maxsize=4)
def ledger(profile: Profile) -> Ledger:
    """The history of ``profile`` (cached: the sync layer asks once per account)."""
    return _Generator(profile).run()


def iban(country: str, bban: str) -> str:
    """An IBAN with valid check digits (ISO 13616, mod 97)."""
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def _last_weekday_on_or_before(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _month_end(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


# An item before it becomes a record:
# (account, minor amount, description, merchant, category, kind, value-date offset, pending draw)
_Item = tuple[str, int, str, str | None, str | None, str, int, float]


class _Generator:
    def __init__(self, profile: Profile) -> None:
        self.p = profile
        self.locale: Locale = locale_for(profile.country)
        self.exponent = 0 if profile.currency in ZERO_DECIMAL_CURRENCIES else 2
        # VND prices are quoted in thousands; nobody pays 43,517 dong for a coffee
        self.round_to = 1000 if profile.currency == "VND" else 1
        self.base = f"{profile.seed}|{profile.username}"
        user = random.Random(self.base)  # noqa: S311 - synthetic data, not cryptography  # nosec B311
        self.holder = user.choice(self.locale.holders)
        self.last4 = {
            CURRENT: f"{user.randrange(10_000):04d}",
            CARD: f"{user.randrange(10_000):04d}",
            SAVINGS: f"{user.randrange(10_000):04d}",
        }
        self.account_digits = {key: f"{user.randrange(10**10):010d}" for key in self.last4}
        self.opening = {
            CURRENT: self.locale.salary * (50 + user.randrange(100)) // 100,
            SAVINGS: self.locale.salary * (100 + user.randrange(300)) // 100,
        }
        self.credit_limit = self._round(self.locale.salary * 2)
        pool: list[Merchant] = []
        for merchant in self.locale.merchants:
            pool.extend([merchant] * merchant.weight)
        self.pool = pool
        self.start = profile.today - timedelta(days=profile.history_days - 1)
        self.pending_from = profile.today - timedelta(days=1)
        self.scale = Decimal(1).scaleb(-self.exponent)

    # --- amounts and ids --------------------------------------------------------------------

    def _round(self, minor: float) -> int:
        return round(minor / self.round_to) * self.round_to

    def _local(self, base_low: int, base_high: int, r: float) -> int:
        cents = base_low + (base_high - base_low) * r
        return max(self.round_to, self._round(cents * self.locale.factor * 10**self.exponent / 100))

    def _amount(self, minor: int) -> Decimal:
        return Decimal(minor).scaleb(-self.exponent)

    def _id(self, *parts: object) -> str:
        key = "|".join(map(str, (self.base, self.p.epoch, *parts)))
        digest = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
        return f"{self.p.slug}-{digest}"

    # --- one day ----------------------------------------------------------------------------

    def _recurring(self, day: date, rng: random.Random, card_spend: dict[date, int]) -> list[_Item]:
        loc = self.locale
        items: list[_Item] = []
        month = day.replace(day=1)
        ref = f"{int(rng.random() * 1e10):010d}"
        words = {"m": month, "ref": ref, "employer": loc.employer, "landlord": loc.landlord}

        def text(key: str, **more: object) -> str:
            return loc.texts[key].format(**words, **more)

        if day == _last_weekday_on_or_before(day.replace(day=25)):
            items.append(
                (
                    CURRENT,
                    self._round(loc.salary),
                    text("salary"),
                    None,
                    "income",
                    "salary",
                    0,
                    1.0,
                )
            )
        if day.day == 1:
            rent = -self._round(loc.rent)
            items.append((CURRENT, rent, text("rent"), None, None, "rent", 0, 1.0))
        for bill in loc.bills:
            if day.day == bill.day:
                line = bill.text.format(**words, last4=self.last4[CURRENT])
                amount = -self._local(bill.low, bill.high, rng.random())
                items.append((CURRENT, amount, line, bill.name, None, "bill", 0, 1.0))
        if day.day == 26:
            amount = self._round(loc.salary // 10)
            out = text("savings_out", last4=self.last4[SAVINGS])
            items.append((CURRENT, -amount, out, None, "transfer", "savings", 0, 1.0))
            into = text("savings_in", last4=self.last4[CURRENT])
            items.append((SAVINGS, amount, into, None, "transfer", "savings", 0, 1.0))
        if day.day == 3:
            previous = (month - timedelta(days=1)).replace(day=1)
            owed = card_spend.get(previous, 0)
            if owed > 0:
                words["m"] = previous
                out = text("repayment_out", last4=self.last4[CARD])
                items.append((CURRENT, -owed, out, None, "transfer", "repayment", 0, 1.0))
                into = text("repayment_in", last4=self.last4[CARD])
                items.append((CARD, owed, into, None, "transfer", "repayment", 0, 1.0))
                words["m"] = month
        if day == _month_end(day):
            fee = self._local(490, 490, 0.0)
            items.append((CURRENT, -fee, text("fee"), None, "fees_and_charges", "fee", 0, 1.0))
            interest = self._local(100, 900, rng.random())
            items.append((SAVINGS, interest, text("interest"), None, None, "interest", 0, 1.0))
        return items

    def _purchase(self, day: date, rng: random.Random, credit_share: float, shown: str) -> _Item:
        loc = self.locale
        r = rng.random()
        ref = f"{int(rng.random() * 1e10):010d}"
        if r < credit_share:
            name = loc.people[int(rng.random() * len(loc.people))]
            amount = self._local(*self.credit_range, rng.random())
            text = loc.texts["transfer_in"].format(name=name, ref=ref)
            return (CURRENT, amount, text, None, None, "transfer_in", 0, 1.0)
        if r < credit_share + 0.03:
            name = loc.people[int(rng.random() * len(loc.people))]
            amount = -self._local(1000, 15000, rng.random())
            text = loc.texts["transfer_out"].format(name=name, ref=ref)
            return (CURRENT, amount, text, None, None, "transfer_out", 0, 1.0)
        merchant = self.pool[int(rng.random() * len(self.pool))]
        amount = -self._local(merchant.low, merchant.high, rng.random())
        account = CARD if rng.random() < 0.4 else CURRENT
        text = loc.card_text.format(
            bin=loc.card_bin,
            last4=self.last4[account],
            d=shown,
            stmt=merchant.statement,
            code=f"{int(rng.random() * 1e6):06d}",
            ref=ref,
        )
        lag = 1 if rng.random() < 0.5 else 0
        return (account, amount, text, merchant.name, None, merchant.kind, lag, rng.random())

    def _daily_count(self, day: date, rng: random.Random) -> int:
        total = self.p.exact_total
        if total is not None and day >= self.start:
            # spread exactly ``total`` items over any window of ``history_days`` days: day n holds
            # the items k with floor(k * days / total) == n, so the count is a function of the day
            n, days = day.toordinal(), self.p.history_days
            return -((-(n + 1) * total) // days) + ((-n * total) // days)
        return int(rng.random() * 3) + (1 if rng.random() < 0.2 else 0)

    # --- the whole history ------------------------------------------------------------------

    def run(self) -> Ledger:
        p = self.p
        rows: dict[str, list[TransactionRecord]] = {CURRENT: [], SAVINGS: [], CARD: []}
        card_spend: dict[date, int] = {}
        # start a month early so the first repayment in the window knows what it repays
        day = (self.start - timedelta(days=31)).replace(day=1)
        # user_big reads like a small business: about as much comes in as goes out
        credit_share = 0.47 if p.exact_total is not None else 0.02
        self.credit_range = (1300, 8000) if p.exact_total is not None else (2000, 30000)
        one_day = timedelta(days=1)
        while day <= p.today:
            rng = random.Random(f"{self.base}|{day.toordinal()}")  # noqa: S311 - synthetic data  # nosec B311
            items = self._recurring(day, rng, card_spend)
            count = self._daily_count(day, rng) - (len(items) if p.exact_total else 0)
            shown = day.strftime(self.locale.card_date)
            items.extend(self._purchase(day, rng, credit_share, shown) for _ in range(count))
            month = day.replace(day=1)
            for account, amount, *_ in items:
                if account == CARD and amount < 0:
                    card_spend[month] = card_spend.get(month, 0) - amount
            if day >= self.start:
                self._book(day, items, rows)
            day += one_day
        if p.pending:
            self._hold(rows)
        for number, refresh_day in enumerate(p.refresh_dates, start=1):
            self._refresh(number, refresh_day, rows)
        return self._ledger(rows)

    def _book(
        self, day: date, items: list[_Item], rows: dict[str, list[TransactionRecord]]
    ) -> None:
        currency, amount_of = self.p.currency, self._amount
        pending_window = self.p.pending and day >= self.pending_from
        # one digest per day; an item's id adds its position, and a pending item gets another id
        # than the booked item it becomes
        prefix = self._id("day", day.toordinal())
        value_dates = (day, day - timedelta(days=1))
        for index, (account, amount, text, merchant, category, kind, lag, draw) in enumerate(items):
            status = TransactionStatus.BOOKED
            if pending_window and merchant is not None and draw < 0.6:
                status = TransactionStatus.PENDING
                if kind in _CARD_KINDS:
                    amount = self._round(amount * 0.85)
            pending = status is TransactionStatus.PENDING
            rows[account].append(
                TransactionRecord(
                    bank_id=f"{prefix}{2 * index + pending:03x}",
                    booking_date=day,
                    amount=amount_of(amount),
                    currency=currency,
                    description=text,
                    value_date=None if pending else value_dates[lag],
                    merchant=merchant,
                    category=category,
                    status=status,
                )
            )

    def _hold(self, rows: dict[str, list[TransactionRecord]]) -> None:
        """Today's card authorisation: pending until the merchant settles or releases it."""
        today = self.p.today
        rng = random.Random(f"{self.base}|hold|{today.toordinal()}")  # noqa: S311 - synthetic data  # nosec B311
        account, amount, text, merchant, _, _, _, _ = self._purchase(
            today, rng, 0.0, today.strftime(self.locale.card_date)
        )
        rows[account].append(
            TransactionRecord(
                bank_id=self._id("hold", today.toordinal()),
                booking_date=today,
                amount=self._amount(amount),
                currency=self.p.currency,
                description=text,
                merchant=merchant,
                status=TransactionStatus.PENDING,
            )
        )

    def _refresh(self, number: int, day: date, rows: dict[str, list[TransactionRecord]]) -> None:
        """What became visible at unattended refresh ``number``: a few new card payments, and
        one pending payment that books (with a new id, sometimes a new amount) at the next one."""
        rng = random.Random(f"{self.base}|refresh|{number}")  # noqa: S311 - synthetic data  # nosec B311
        count = 2 + int(rng.random() * 3)
        shown = day.strftime(self.locale.card_date)
        items = [self._purchase(day, rng, 0.0, shown) for _ in range(count + 1)]
        dates = self.p.refresh_dates
        for index, (account, amount, text, merchant, category, _kind, _lag, _) in enumerate(items):
            status, booked_on = TransactionStatus.BOOKED, day
            if index == count:
                if number < len(dates):
                    booked_on = dates[number]
                    if rng.random() < 0.5:
                        amount = self._round(amount * (1.05 + 0.15 * rng.random()))
                else:
                    status = TransactionStatus.PENDING
            rows[account].append(
                TransactionRecord(
                    bank_id=self._id("refresh", number, index, status),
                    booking_date=booked_on,
                    amount=self._amount(amount),
                    currency=self.p.currency,
                    description=text,
                    value_date=None if status is TransactionStatus.PENDING else day,
                    merchant=merchant,
                    category=category,
                    status=status,
                )
            )

    def _ledger(self, rows: dict[str, list[TransactionRecord]]) -> Ledger:
        p, loc = self.p, self.locale
        names = _ACCOUNT_NAMES.get(loc.country, _ACCOUNT_NAMES["US"])
        booked = {
            key: sum(t.amount for t in txs if t.status is TransactionStatus.BOOKED)
            for key, txs in rows.items()
        }
        held = {
            key: sum(t.amount for t in txs if t.status is TransactionStatus.PENDING)
            for key, txs in rows.items()
        }
        # a credit card owes what was spent since the last statement that has been repaid
        this_month = p.today.replace(day=1)
        cutoff = this_month if p.today.day >= 3 else (this_month - timedelta(days=1)).replace(day=1)
        owed = sum(
            t.amount
            for t in rows[CARD]
            if t.booking_date >= cutoff and t.amount < 0 and t.status is TransactionStatus.BOOKED
        )
        balances = {
            CURRENT: self._amount(self.opening[CURRENT]) + booked[CURRENT],
            SAVINGS: self._amount(self.opening[SAVINGS]) + booked[SAVINGS],
            CARD: Decimal(owed),
        }
        available = {
            CURRENT: balances[CURRENT] + held[CURRENT],
            SAVINGS: balances[SAVINGS],
            CARD: self._amount(self.credit_limit) + balances[CARD] + held[CARD],
        }
        types = {CURRENT: AccountType.CURRENT, SAVINGS: AccountType.SAVINGS}
        accounts, transactions = [], {}
        for key, name in zip((CURRENT, SAVINGS, CARD), names, strict=True):
            bank_id = self._id("account", key)
            number, account_iban = self._number(key)
            accounts.append(
                AccountRecord(
                    bank_id=bank_id,
                    name=name,
                    type=types.get(key, AccountType.CREDIT_CARD),
                    currency=p.currency,
                    balance=balances[key].quantize(self.scale),
                    available_balance=available[key].quantize(self.scale),
                    number=number,
                    iban=account_iban,
                    holder_name=self.holder,
                )
            )
            txs = rows[key]
            txs.sort(key=lambda t: t.booking_date, reverse=True)
            transactions[bank_id] = tuple(txs)
        return Ledger(tuple(accounts), transactions)

    def _number(self, key: str) -> tuple[str | None, str | None]:
        """Account number and IBAN, as the bank's country writes them; stable across re-mints."""
        digits, country = self.account_digits[key], self.locale.country
        if key == CARD:
            return f"{self.locale.card_bin}******{self.last4[CARD]}", None
        seed_digits = f"{self.p.seed * 2_654_435_761 % 10**8:08d}"
        if country == "DE":
            return None, iban("DE", seed_digits + digits)
        if country == "FR":
            bank, branch, account = seed_digits[:5], digits[:5], digits + "0"
            rib = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
            return None, iban("FR", f"{bank}{branch}{account}{rib:02d}")
        if country == "GB":
            sort_code, account = seed_digits[:6], digits[:8]
            number = f"{sort_code[:2]}-{sort_code[2:4]}-{sort_code[4:]} {account}"
            return number, iban("GB", f"SNDB{sort_code}{account}")
        if country == "VN":
            return f"0071{digits[:9]}", None
        return digits + seed_digits[:2], None
