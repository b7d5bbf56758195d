"""Jinja2 for the hosted pages: autoescaped; bank and partner strings are never marked safe."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar.plugins.jinja import JinjaTemplateEngine


def environment() -> Environment:
    return Environment(
        loader=PackageLoader("bankhub.connect", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template_engine() -> JinjaTemplateEngine:
    return JinjaTemplateEngine.from_environment(environment())
