"""Every string of the end user's pages is translated, in every language the pages speak.

* the committed ``messages.pot`` is what ``scripts/i18n extract`` finds now: a new English
  string that was not extracted fails here;
* every msgid has a non-empty, non-fuzzy translation in every locale, with the same
  placeholders;
* every step of the connect page, and the sandbox bank's page, rendered in each language,
  holds no English sentence of the catalog.
"""

from __future__ import annotations

import re
import subprocess  # nosec B404 - runs the project's own extraction script
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from bankhub import i18n
from bankhub.connect import templates
from bankhub.connectors.base import Challenge, ChallengeKind, Choice, CredentialField, FieldKind
from bankhub.connectors.sandbox import pages as sandbox_pages

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = [code for code in i18n.SUPPORTED if code != i18n.DEFAULT]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|\{[a-z_]+\}")


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale)


def _messages(catalog: Catalog) -> list[Message]:
    return [m for m in catalog if m.id]


def _english(message: Message) -> list[str]:
    ids = message.id if isinstance(message.id, tuple | list) else (message.id,)
    return [str(i) for i in ids]


def test_the_committed_template_is_what_extraction_finds(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    pybabel = ROOT / ".venv" / "bin" / "pybabel"
    subprocess.run(  # nosec B603 - a fixed command of this repository
        [str(ROOT / "scripts" / "i18n"), "extract", str(fresh)],
        check=True,
        env={"PYBABEL": str(pybabel), "PATH": "/usr/bin:/bin"},
    )
    committed = i18n.LOCALES_DIR / "messages.pot"
    assert fresh.read_text("utf-8") == committed.read_text("utf-8"), (
        "messages.pot is not current: run scripts/i18n extract, then scripts/i18n update, "
        "and translate the new strings"
    )


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_msgid_is_translated(locale: str) -> None:
    template = _read(i18n.LOCALES_DIR / "messages.pot")
    catalog = _read(i18n.LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po", locale)
    wanted = {m.id for m in _messages(template)}
    have = {m.id: m for m in _messages(catalog)}
    assert wanted - have.keys() == set(), f"{locale}: not in the catalog"
    assert have.keys() - wanted == set(), f"{locale}: no longer in the code"
    for msgid in wanted:
        message = have[msgid]
        assert not message.fuzzy, f"{locale}: fuzzy {msgid!r}"
        given = message.string
        strings = (
            [str(t or "") for t in given] if isinstance(given, tuple | list) else [given or ""]
        )
        assert len(strings) == catalog.num_plurals or not isinstance(message.id, tuple)
        for english, text in zip(_english(message) * len(strings), strings, strict=False):
            assert text.strip(), f"{locale}: untranslated {msgid!r}"
            assert sorted(set(PLACEHOLDER.findall(text))) == sorted(
                set(PLACEHOLDER.findall(english))
            ), f"{locale}: the placeholders of {msgid!r} differ"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_catalog_compiles_and_is_used(locale: str) -> None:
    translations = i18n.translations(locale)
    assert translations.gettext("Continue") != "Continue"
    assert translations.ngettext("{count} year", "{count} years", 2) != "{count} years"


# --- every step, rendered ------------------------------------------------------------------------


class _Text(HTMLParser):
    """What a person reads on a page: its text and the attributes read aloud."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("aria-label", "alt", "title", "placeholder") and value:
                self.parts.append(value)


def _text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def _sentences() -> list[str]:
    """The English fragments of the catalog of two words or more, which no other language
    writes the same (a
    placeholder splits a message: each side is a fragment)."""
    template = _read(i18n.LOCALES_DIR / "messages.pot")
    found: set[str] = set()
    for message in _messages(template):
        for english in _english(message):
            for fragment in PLACEHOLDER.split(re.sub(r"<[^>]+>", "", english)):
                words = fragment.strip(" .,:;…")
                if len(words.split()) >= 2:
                    found.add(words)
    return sorted(found)


SERVICE = SimpleNamespace(name="Sandbox Bank Việt Nam")
BRAND = SimpleNamespace(
    has_colours=False,
    display_name=None,
    logo_url=None,
    welcome_text=None,
    footer_text=None,
    privacy_url=None,
    data_notice=None,
)
FIELDS = [
    CredentialField("username", "Username", FieldKind.TEXT, help="user_good, user_otp"),
    CredentialField("password", "Password", FieldKind.SECRET),
]
CHALLENGE = Challenge(
    ChallengeKind.FLICKER, "image/png", b"\x89PNG", "flicker", manual=(("Start code", "1234"),)
)


def _interaction(**extra: Any) -> SimpleNamespace:
    base = {
        "prompt": "Bank prompt",
        "notices": ("A bank notice",),
        "options": [Choice("a", "Phone"), Choice("b", "Tablet")],
        "challenge": CHALLENGE,
        "field_label": "TAN",
        "secret": True,
        "url": "https://bank.example/authorize",
    }
    return SimpleNamespace(**{**base, **extra})


def _payment(count: int) -> SimpleNamespace:
    return SimpleNamespace(
        count=count,
        total="1234.50",
        currency="EUR",
        creditor="Jürgen Müller",
        creditor_account="DE89…3000",
        remittance="Invoice 7",
        debtor=None,
        execution_date="2026-12-24",
    )


def _session(payment: bool = False, cancelling: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        payment=SimpleNamespace(cancelling=cancelling) if payment else None,
    )


def _steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every page of the flow, in every state it can show (name, template, context)."""
    yield "consent", "consent.html", {"history": "2 years", "consent_days": 90}
    yield "consent-upload", "consent.html", {"history": None, "consent_days": 90}
    yield "credentials", "credentials.html", {"fields": FIELDS}
    yield "credentials-redirect", "credentials.html", {"fields": []}
    upload = {"max_mb": 20, "columns": ("Datum", "Betrag"), "date_formats": [("%d.%m.%Y", "x")]}
    yield "upload", "upload.html", {**upload, "detail": None}
    # a file the parser refused: its own words (English, marked so) under the notice
    yield "upload-refused", "upload.html", {**upload, "detail": "line 5: 'x' is not an amount"}
    yield "code", "code.html", {"interaction": _interaction()}
    yield "choice", "choice.html", {"interaction": _interaction()}
    yield "redirect", "redirect.html", {"interaction": _interaction()}
    yield "decoupled", "decoupled.html", {"interaction": _interaction()}
    yield "waiting", "waiting.html", {}
    for payment, cancelling in ((False, False), (True, False), (True, True)):
        yield (
            f"progress-{payment}-{cancelling}",
            "progress.html",
            {"session": _session(payment, cancelling)},
        )
    for count in (1, 3):
        for cancelling in (False, True):
            yield (
                f"payment-{count}-{cancelling}",
                "payment.html",
                {"session": _session(True, cancelling), "payment": _payment(count)},
            )
    yield "failed", "failed.html", {"message": "", "return_url": "https://app.example/cb"}
    yield (
        "ended",
        "ended.html",
        {
            "heading": "",
            "message": "",
            "code": "TokenExpire",
            "return_url": "https://app.example/cb",
            "retry_url": "/v2/connect/session",
        },
    )
    yield "error", "error.html", {"code": "TokenExpire", "message": ""}
    yield "relay", "relay.html", {}


def _render(template: str, context: dict[str, Any], locale: str) -> str:
    base: dict[str, Any] = {
        "session": _session(),
        "service": SERVICE,
        "app_name": "Demo app",
        "logo_url": "/media/x.png",
        "csrf": "c",
        "form_step": 1,
        "notice": "A notice",
        "idle_minutes": 5,
        "refresh": None,
        "brand": BRAND,
        "kept": {"username": "user_good"},
        "invalid": ("username", "password"),
        "privacy_url": "https://operator.example/privacy",
        "data_notice": "",
    }
    return templates.environment(locale).get_template(template).render(**{**base, **context})


STEPS = list(_steps())


@pytest.mark.parametrize(("name", "template", "context"), STEPS, ids=[s[0] for s in STEPS])
def test_every_step_in_every_language_leaves_no_english_sentence(
    name: str, template: str, context: dict[str, Any]
) -> None:
    sentences = _sentences()
    english = _text(_render(template, context, "en"))
    shown = [s for s in sentences if s in english]
    # the check can fail: the English page shows sentences of the catalog
    assert shown, f"{name}: no sentence of ours in English"
    for locale in TRANSLATED:
        html = _render(template, context, locale)
        assert f'<html lang="{locale}">' in html
        text = _text(html)
        left = [s for s in shown if s in text]
        assert not left, f"{name} in {locale} still says in English: {left}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_sandbox_bank_page_speaks_the_language(locale: str) -> None:
    page = sandbox_pages._templates(locale).get_template("authorize.html")
    context = {
        "bank_name": "Sandbox Bank",
        "request_id": "r",
        "return_url": "https://x.example/",
        "return_host": "x.example",
    }
    english = _text(sandbox_pages._templates("en").get_template("authorize.html").render(context))
    html = page.render(context)
    assert f'<html lang="{locale}">' in html
    shown = [s for s in _sentences() if s in english]
    assert shown
    assert not [s for s in shown if s in _text(html)]


def test_a_payment_amount_and_date_are_written_for_the_language() -> None:
    context = {"session": _session(True), "payment": _payment(1)}
    assert "1.234,50\xa0€" in _render("payment.html", context, "de")
    assert "24. Dezember 2026" in _render("payment.html", context, "de")
    assert "1.234,50\xa0€" in _render("payment.html", context, "vi")
    assert "24 tháng 12, 2026" in _render("payment.html", context, "vi")
    assert "€1,234.50" in _render("payment.html", context, "en")


def test_the_amount_helper_takes_the_summary_text_exactly() -> None:
    assert i18n.amount(Decimal("1234.50"), "EUR", "fr") == "1\u202f234,50\xa0€"
    assert i18n.day(date(2026, 12, 24), "fr") == "24 décembre 2026"


def test_the_sandbox_banks_own_words_are_shown_in_the_language() -> None:
    """The sandbox bank marks its words for the catalog; a bank's word the catalog does not
    hold is shown as the bank wrote it."""
    asked = _interaction(prompt="Enter the code we sent to your phone (hint: 123456)")
    page = _render("code.html", {"interaction": asked}, "vi")
    assert "Nhập mã chúng tôi đã gửi đến điện thoại" in page
    assert "Enter the code we sent" not in page
    fields = {"fields": FIELDS}
    assert ">Benutzername</label>" in _render("credentials.html", fields, "de")
    assert ">Bank prompt</h2>" in _render("code.html", {"interaction": _interaction()}, "de")
