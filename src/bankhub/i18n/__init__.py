"""The end user's language on the hosted pages: which locale, its catalog, its numbers and dates.

Babel does the work (negotiation, plural rules, CLDR number and date formats) and gettext holds
the words; nothing here is a hand-made table of another language's conventions. The catalogs'
sources are the ``.po`` files under ``locales/`` (``messages.pot`` is what ``scripts/i18n
extract`` finds in the templates and the connect code). They are compiled in memory when a
process first needs them, so a fresh clone needs no build step and no ``.mo`` file is ever out
of date with its ``.po``.

The locale of a connect session is chosen once, when it opens (:func:`choose`): the partner's
``locale`` given with the token, else the browser's ``Accept-Language`` (q-values honoured),
else the language of the bank's country, else English.
"""

from __future__ import annotations

import functools
import gettext
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT = "en"
#: the languages the hosted pages speak: English and those of the sandbox's countries
SUPPORTED: tuple[str, ...] = ("en", "vi", "de", "fr", "ms")
#: a bank's country → the language its customers read first (the sandbox's countries and
#: their neighbours; anything else falls back to English)
COUNTRY_LANGUAGE = {
    "VN": "vi",
    "DE": "de",
    "AT": "de",
    "CH": "de",
    "LI": "de",
    "FR": "fr",
    "BE": "fr",
    "LU": "fr",
    "MC": "fr",
    "MY": "ms",
    "BN": "ms",
    "GB": "en",
    "US": "en",
    "IE": "en",
}
#: the longest ``Accept-Language`` header read (a browser sends a few dozen bytes)
MAX_ACCEPT_LANGUAGE = 512
#: the most language ranges read from it
MAX_RANGES = 20


class UnsupportedLocale(ValueError):
    """A locale the hosted pages do not speak; the message lists those they do."""

    def __init__(self, given: str) -> None:
        super().__init__(
            f"Unsupported locale {given[:40]!r}: choose one of {', '.join(SUPPORTED)}."
        )
        self.given = given


def supported(value: str) -> str:
    """``value`` as one of :data:`SUPPORTED` (``de-DE`` and ``de_DE`` are ``de``), or
    :class:`UnsupportedLocale`. A region is accepted and dropped: the pages have one
    variant of each language."""
    text = value.strip().replace("_", "-")
    try:
        parsed = Locale.parse(text, sep="-")
    except (ValueError, UnknownLocaleError):
        raise UnsupportedLocale(value) from None
    if parsed.language not in SUPPORTED:
        raise UnsupportedLocale(value)
    return parsed.language


def accepted(header: str | None) -> list[str]:
    """The language ranges of an ``Accept-Language`` header, best first (RFC 9110 §12.5.4:
    a q-value of 0 means "not acceptable"; equal q-values keep the header's order)."""
    if not header:
        return []
    ranges: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")[:MAX_RANGES]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*":
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, raw = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(raw)
                except ValueError:
                    q = 0.0
        if 0 < q <= 1:
            ranges.append((-q, index, tag))
    return [tag for _, _, tag in sorted(ranges)]


def from_browser(header: str | None) -> str | None:
    """The supported locale the browser prefers, if it accepts any (``vi-VN`` → ``vi``):
    Babel tries each range in the order of :func:`accepted`, a regional one by its language
    too."""
    return negotiate_locale(accepted(header), SUPPORTED, sep="-", aliases={})


def choose(token_locale: str | None, accept_language: str | None, country: str | None) -> str:
    """The connect session's locale: the partner's choice, the browser's, the bank's
    country's, English."""
    if token_locale:
        return token_locale
    return from_browser(accept_language) or COUNTRY_LANGUAGE.get((country or "").upper(), DEFAULT)


@functools.cache
def translations(locale: str) -> gettext.NullTranslations:
    """The catalog of ``locale`` compiled from its ``.po`` (English: the msgids themselves)."""
    if locale == DEFAULT or locale not in SUPPORTED:
        return gettext.NullTranslations()
    path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    # fuzzy entries are never used: a guess is not a translation
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def gettext_for(locale: str) -> gettext.NullTranslations:
    """What a message is looked up in for ``locale``: ``_ = gettext_for(l).gettext``."""
    return translations(locale)


def language_name(locale: str) -> str:
    """A language's name in that language (the switcher's labels: ``Tiếng Việt``)."""
    name = Locale.parse(locale).get_display_name(locale) or locale
    return name[:1].upper() + name[1:]


def amount(value: Decimal, currency: str | None, locale: str) -> str:
    """An amount as ``locale`` writes it (``1.234,56 €``, ``1.234.567 ₫``); the ``Decimal``
    itself is never turned into a float."""
    if currency:
        return format_currency(value, currency, locale=locale)
    return format_decimal(value, locale=locale)


def day(value: date, locale: str) -> str:
    """A date as ``locale`` writes it in full (``7. Dezember 2026``, ``7 thg 12, 2026``)."""
    return format_date(value, format="long", locale=locale)
