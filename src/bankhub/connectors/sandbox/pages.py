"""The sandbox bank's own consent page, the far end of the ``user_redirect`` scenario.

A real bank hosts this page itself; bankhub serves it so the redirect flow can be tried without
one. It speaks the language the connect page spoke (``ui_locales``, OpenID Connect's hint of
the user's languages, best first, which the connector sends), else the browser's
(``Accept-Language``) when it is one of bankhub's, else its country's, as a bank's own site
would. The user approves or denies, and the page sends the
browser back to ``return_url`` with ``request`` and ``code`` (or ``error=access_denied``) in
the query, as an OAuth server would. It is a simulation: there is no CSRF token, and any
http(s) ``return_url`` is accepted.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Request, Response, Router, get, post
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.params import Body, QueryParameter
from litestar.response import Redirect

from bankhub import i18n
from bankhub.catalogue import Service, default_catalogue
from bankhub.connectors.sandbox import bank


@functools.cache
def _templates(locale: str) -> Environment:
    env = Environment(
        loader=PackageLoader("bankhub.connectors.sandbox", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.globals["locale"] = locale
    return env


_STYLE = files("bankhub.connectors.sandbox").joinpath("templates/style.css").read_text("utf-8")


def _checked_return_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationException("return_url must be an http or https URL")
    return url


def _bank(slug: str | None) -> Service | None:
    if slug:
        for service in default_catalogue().services:
            if service.slug == slug:
                return service
    return None


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))


@get("/authorize", media_type=MediaType.HTML, sync_to_thread=False)
def authorize_page(
    request: Request[Any, Any, Any],
    request_id: Annotated[str, QueryParameter(name="request", min_length=1, max_length=200)],
    return_url: Annotated[str, QueryParameter(max_length=2000)],
    bank_slug: Annotated[str | None, QueryParameter(name="bank", max_length=100)] = None,
    ui_locales: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> str:
    """Ask the user to approve or deny sharing their data."""
    service = _bank(bank_slug)
    # ui_locales is a space-separated list, best first: read as an Accept-Language list is
    hinted = i18n.from_browser(",".join((ui_locales or "").split()))
    locale = i18n.choose(
        hinted, request.headers.get("accept-language"), service.country_code if service else None
    )
    page = _templates(locale).get_template("authorize.html")
    return page.render(
        bank_name=service.name if service else "Sandbox Bank",
        request_id=request_id,
        return_url=_checked_return_url(return_url),
        return_host=urlsplit(return_url).netloc,
    )


@post("/authorize", status_code=303, sync_to_thread=False)
def authorize_decision(
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Redirect:
    """Send the browser back with a signed code (approve) or ``error=access_denied`` (deny)."""
    request_id = data.get("request", "")
    return_url = _checked_return_url(data.get("return_url", ""))
    if not request_id:
        raise ValidationException("request is required")
    if data.get("decision") == "approve":
        answer = {"request": request_id, "code": bank.consent_code(request_id)}
    else:
        answer = {"request": request_id, "error": "access_denied"}
    return Redirect(path=_with_query(return_url, answer), status_code=303)


@get("/style.css", sync_to_thread=False)
def stylesheet() -> Response[str]:
    """The page's stylesheet (kept out of the HTML so a strict CSP needs no inline styles)."""
    return Response(
        _STYLE, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


#: the stand-in bank's own pages, not part of bankhub's API description
router = Router(
    opt={"scope": "public"},
    path="/sandbox-bank",
    route_handlers=[authorize_page, authorize_decision, stylesheet],
    include_in_schema=False,
)
