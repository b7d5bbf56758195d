"""Jinja2 for the hosted pages: autoescaped; bank and partner strings are never marked safe.

One environment per locale, each with its catalog installed (``jinja2.ext.i18n``): a page is
rendered in its session's language by the environment of that language, so no request ever
sees another's translations. ``amount`` and ``day`` format with Babel for the same locale.
"""

from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import Response
from litestar.enums import MediaType
from litestar.plugins.jinja import JinjaTemplateEngine

from bankhub import i18n


@functools.cache
def environment(locale: str = i18n.DEFAULT) -> Environment:
    env = Environment(
        loader=PackageLoader("bankhub.connect", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n", "jinja2.ext.do"],
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]

    def amount(value: Decimal | str, currency: str | None = None) -> str:
        # a summary carries the amount as the API writes it ("12.50"): exact, never a float
        return i18n.amount(Decimal(value), currency, locale)

    def day(value: date | str) -> str:
        return i18n.day(date.fromisoformat(value) if isinstance(value, str) else value, locale)

    # a bank's own word (a field's label, a prompt) in the page's language where the catalog
    # has it (the sandbox bank marks its words), else as the bank wrote it
    bank_word = i18n.translations(locale).gettext
    env.globals.update(
        bank_word=bank_word,
        locale=locale,
        amount=amount,
        day=day,
        languages=[(code, i18n.language_name(code)) for code in i18n.SUPPORTED],
    )
    return env


def render(
    name: str,
    context: dict[str, Any],
    locale: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    """Page ``name`` in ``locale``, as an HTML answer."""
    html = environment(locale).get_template(name).render(**context)
    return Response(
        html,
        media_type=MediaType.HTML,
        status_code=status_code,
        headers={"Content-Language": locale, **(headers or {})},
    )


def template_engine() -> JinjaTemplateEngine:
    return JinjaTemplateEngine.from_environment(environment())
