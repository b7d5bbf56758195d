"""Routes of the hosted connect page. Every state change is a POST with a CSRF token (PRG),
except the bank's redirect back (``/v2/connect/return``), which acts only with the ``state``
the session gave its bank."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, URLEncodedBody
from litestar.response import File, Redirect
from sqlalchemy import select

from bankhub import i18n
from bankhub.api.principal import HubDep, hub_of, public_url
from bankhub.connect import templates
from bankhub.connect.flow import ConnectFlow, ConnectSession, EndedSession, SessionGone, Step
from bankhub.connect.pages import (
    CSP,
    IMAGE_CSP,
    ConnectEnded,
    browser_language,
    ended_page,
    history_phrase,
    logo_url,
    page_headers,
)
from bankhub.connectors.base import (
    Answer,
    AuthFlow,
    FieldKind,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    NeedsRedirect,
)
from bankhub.connectors.statement.connector import StatementUnreadable, parse_upload
from bankhub.db import tenancy
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.logins.services import TokenUnusable
from bankhub.partners import branding
from bankhub.partners.models import App
from bankhub.security import scopes
from bankhub.statements.csvfiles import CsvMapping, table_layout
from bankhub.statements.model import Problem
from bankhub.usage import counters as usage

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]

COOKIE = "bankhub_connect"
SECURE_COOKIE = "__Host-bankhub_connect"
SESSION_PAGE = "/v2/connect/session"
STATIC = Path(__file__).parent / "static"
MAX_FIELD = 256
#: a bank's answer may carry a signed ID token (OpenID hybrid flow), a few kilobytes
MAX_RETURN_VALUE = 8192
#: the largest statement file the upload step takes (the rest of the app keeps 1 MB)
MAX_STATEMENT_BYTES = 20 * 1024 * 1024


def flow_of(request: AnyRequest) -> ConnectFlow:
    flow: ConnectFlow = request.app.state.connect
    return flow


def _cookie_value(request: AnyRequest) -> str | None:
    return request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE)


def _session(request: AnyRequest) -> ConnectSession:
    """The browser's connect session; once it ended, ``TokenExpire`` with the way back."""
    try:
        session = flow_of(request).get(_cookie_value(request))
    except SessionGone as gone:
        raise ConnectEnded(gone.ended) from None
    usage.attribute(session.app_id)
    return session


def _check_form(request: AnyRequest, session: ConnectSession, form: dict[str, str]) -> None:
    """CSRF: the session's token must come back, and a browser's Origin must be our own."""
    given = form.get("csrf", "")
    if not hmac.compare_digest(given.encode(), session.csrf.encode()):
        _ = i18n.gettext_for(session.locale).gettext
        raise DomainError(
            ErrorCode.BAD_REQUEST,
            _("This form has expired. Go back to the app and start again."),
        )
    origin = request.headers.get("origin")
    if origin and origin != "null":
        own = public_url(hub_of(request), request)
        if urlsplit(origin)[:2] != urlsplit(own)[:2]:
            raise DomainError(
                ErrorCode.BAD_REQUEST,
                i18n.gettext_for(session.locale).gettext(
                    "This form was sent from another site, so it was refused. Go back to the "
                    "app and start again."
                ),
            )


def _form_step(data: dict[str, str]) -> str | None:
    """The bank step a form was shown for (see ``ConnectSession.form_step``)."""
    return data.get("step")


def _client_ip(request: AnyRequest) -> str | None:
    """The end user's address as the server sees it (proxies set it via the ASGI server)."""
    return request.client.host if request.client else None


def _back() -> Redirect:
    return Redirect(SESSION_PAGE, status_code=303, headers=page_headers())


@get("/v2/connect/term/{token_id:str}", opt=scopes.connect(), include_in_schema=False)
async def open_connect(hub: HubDep, request: AnyRequest, token_id: FromPath[str]) -> Response[Any]:
    flow = flow_of(request)
    try:
        current = flow.get(_cookie_value(request))
        if current.token_id == token_id:
            return _back()
    except SessionGone:
        pass
    try:
        session = await flow.open(token_id, browser_language(request))
    except TokenUnusable:
        # Used or expired: the token still names its app, so the page shows the way back.
        ended = await flow.unusable_link(token_id, browser_language(request))
        raise ConnectEnded(ended, extra={"token": token_id[:64]}) from None
    usage.attribute(session.app_id)
    secure = request.url.scheme == "https"
    cookie = Cookie(
        key=SECURE_COOKIE if secure else COOKIE,
        value=session.id,
        path="/",
        httponly=True,
        secure=secure,
        samesite="lax",
        max_age=hub.settings.token_ttl_seconds,
    )
    response = _back()
    response.cookies.append(cookie)
    return response


def _render(
    request: AnyRequest, session: ConnectSession, name: str, **context: Any
) -> Response[str]:
    hub = hub_of(request)
    brand = session.brand
    _ = i18n.gettext_for(session.locale).gettext
    base = {
        "session": session,
        "service": session.service,
        # App Templates: the name the app chose for its end users, else its own
        "app_name": session.display_name,
        "logo_url": logo_url(request, session.service),
        "csrf": session.csrf,
        "form_step": session.form_step,
        "notice": session.notice,
        "idle_minutes": hub.settings.connect_idle_seconds // 60,
        "refresh": None,
        "brand": brand,
        # what static/poll.js compares: the page and the bank step it was shown for
        "state": f"{name}:{session.form_step}:{bool(session.notice)}",
        "kept": session.kept_fields,
        "invalid": session.invalid_fields,
        # the app's own privacy link and words, else the operator's link and our sentence
        "privacy_url": (brand.privacy_url if brand else None) or hub.settings.privacy_url,
        "data_notice": (brand.data_notice if brand else None)
        or _(
            "{operator} runs this secure connection and passes your bank data only to {app}. "
            "{app} decides how your data is used, as its privacy notice says."
        ).format(operator=hub.settings.operator_name, app=session.display_name),
    }
    base.update(context)
    headers = page_headers()
    if base["refresh"]:
        # the waiting pages' one script of ours (static/poll.js); still no inline script
        headers["Content-Security-Policy"] = POLL_CSP
    return templates.render(name, base, session.locale, headers=headers)


@get(SESSION_PAGE, opt=scopes.connect(), include_in_schema=False)
async def show_session(hub: HubDep, request: AnyRequest) -> Response[Any]:
    flow = flow_of(request)
    session = _session(request)
    chosen = request.query_params.get("lang")
    if chosen:
        # the language switcher: a link, so it works without JavaScript; the page keeps it
        with contextlib.suppress(i18n.UnsupportedLocale):
            session.locale = i18n.supported(chosen[:35])
        return _back()
    if session.step == Step.INTERACTION and isinstance(session.interaction, NeedsDecoupledApproval):
        await flow.poll(session)
    if session.finished and request.headers.get(POLL_HEADER):
        # static/poll.js asks: the flow ended, and the page itself (not this background
        # request) must be the one that ends the session and goes back to the app
        return Response(
            '<main data-state="finished"></main>',
            media_type="text/html",
            headers=page_headers(),
        )
    if session.step == Step.DONE:
        flow.end(session)
        return Redirect(session.callback(), status_code=303, headers=page_headers())
    if session.step == Step.FAILED:
        flow.end(session)
        return _render(
            request,
            session,
            "failed.html",
            return_url=session.callback(),
            message=session.failure_message,
        )
    if session.step == Step.PROGRESS:
        return _render(request, session, "progress.html", refresh=1)
    interaction = session.interaction
    if session.busy and not isinstance(interaction, NeedsDecoupledApproval):
        # The bank has not answered the last step yet: this page asks again every second.
        return _render(request, session, "waiting.html", refresh=1)
    if session.step == Step.CONSENT and session.payment_summary is not None:
        return _render(request, session, "payment.html", payment=session.payment_summary)
    if session.step == Step.CONSENT:
        return _render(
            request,
            session,
            "consent.html",
            consent_days=session.info.consent_days,
            # a file holds what it holds: no history depth to promise for an upload
            history=None
            if AuthFlow.FILE in session.info.auth_flows
            else history_phrase(
                session.history_days or hub.engine.history_days(session.service), session.locale
            ),
        )
    if session.step == Step.CREDENTIALS and AuthFlow.FILE in session.info.auth_flows:
        return _render(
            request,
            session,
            "upload.html",
            max_mb=MAX_STATEMENT_BYTES // 2**20,
            columns=session.upload_columns,
            date_formats=DATE_FORMATS,
            detail=session.upload_detail if session.notice else None,
        )
    if session.step == Step.CREDENTIALS:
        fields = [f for f in session.info.credential_fields if f.kind != FieldKind.FILE]
        return _render(request, session, "credentials.html", fields=fields)
    if isinstance(interaction, NeedsCode):
        return _render(request, session, "code.html", interaction=interaction)
    if isinstance(interaction, NeedsChoice):
        return _render(request, session, "choice.html", interaction=interaction)
    if isinstance(interaction, NeedsRedirect):
        return _render(request, session, "redirect.html", interaction=interaction)
    if isinstance(interaction, NeedsDecoupledApproval):
        wait = max(1, round(interaction.poll_after_seconds))
        return _render(request, session, "decoupled.html", interaction=interaction, refresh=wait)
    raise DomainError(ErrorCode.INTERNAL_ERROR)


@post("/v2/connect/consent", opt=scopes.connect(), include_in_schema=False)
async def post_consent(request: AnyRequest, data: Form) -> Redirect:
    session = _session(request)
    _check_form(request, session, data)
    flow_of(request).agree(session)
    return _back()


@post("/v2/connect/credentials", opt=scopes.connect(), include_in_schema=False)
async def post_credentials(hub: HubDep, request: AnyRequest, data: Form) -> Redirect:
    session = _session(request)
    _check_form(request, session, data)
    flow = flow_of(request)
    if not flow.is_current(session, _form_step(data)):
        data.clear()
        return _back()  # the same form again (a double click, a resent page): nothing new
    credentials: dict[str, str] = {}
    _ = i18n.gettext_for(session.locale).gettext
    # the plain text fields (the username) are shown again after a wrong password; a secret
    # field never is
    session.kept_fields = {
        f.name: data.get(f.name, "")[:MAX_FIELD]
        for f in session.info.credential_fields
        if f.kind == FieldKind.TEXT
    }
    for declared in session.info.credential_fields:
        value = data.get(declared.name, "")
        if len(value) > MAX_FIELD:
            session.notice = _("{field} is too long: shorten it and try again.").format(
                field=declared.label
            )
            session.invalid_fields = (declared.name,)
            return _back()
        if not value and not declared.optional:
            session.notice = _("Please fill in {field}.").format(field=declared.label)
            session.invalid_fields = (declared.name,)
            return _back()
        credentials[declared.name] = value
    session.invalid_fields = ()
    try:
        await flow.submit_credentials(
            session, credentials, public_url(hub, request), _client_ip(request)
        )
    finally:
        credentials.clear()
        data.clear()
    return _back()


@post(
    "/v2/connect/upload",
    opt=scopes.connect(),
    include_in_schema=False,
    request_max_body_size=MAX_STATEMENT_BYTES,
)
async def post_upload(
    hub: HubDep,
    request: AnyRequest,
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> Redirect:
    """A statement file for a service of type statement; a parse error is shown on the page."""
    session = _session(request)
    csrf, step = data.get("csrf"), data.get("step")
    _check_form(request, session, {"csrf": csrf if isinstance(csrf, str) else ""})
    if session.step != Step.CREDENTIALS or AuthFlow.FILE not in session.info.auth_flows:
        return _back()
    if not flow_of(request).is_current(session, step if isinstance(step, str) else None):
        return _back()
    upload = data.get("file")
    _ = i18n.gettext_for(session.locale).gettext
    session.upload_detail = None
    if not isinstance(upload, UploadFile):
        session.notice = _("Please choose a statement file.")
        return _back()
    content = await upload.read()
    form = {k: v for k, v in data.items() if isinstance(v, str)}
    file = upload.filename or _("The file")
    try:
        mapping = _upload_mapping(form, content, _, file)
        currency = _currency(form.get("currency", ""), _)
        parsed = await asyncio.to_thread(
            parse_upload, content, upload.filename or None, currency, mapping
        )
    except UploadRefused as refused:
        session.notice = refused.text
        return _back()
    except StatementUnreadable as failure:
        # a table no profile knows: the page offers its header cells for a column mapping
        layout = await asyncio.to_thread(table_layout, content)
        session.upload_columns = layout.columns if layout else ()
        said = _unreadable(failure.problem, _, session.upload_columns)
        session.notice = said.format(file=file, app=session.display_name)
        session.upload_detail = failure.message
        return _back()
    await flow_of(request).submit_statement(session, parsed, public_url(hub, request))
    return _back()


class UploadRefused(Exception):
    """A choice on the upload form that cannot be used; ``text`` says so in the user's words."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _unreadable(problem: Problem, _: Callable[[str], str], columns: tuple[str, ...]) -> str:
    """What the upload step says of a file the parser refused, in the user's language and
    with what to do next (``{file}`` and ``{app}`` still to fill); the parser's own words go
    under it as the technical detail."""
    if problem == "empty":
        return _("{file} is empty. Download the statement from your bank again and choose it here.")
    if problem == "no_transactions":
        return _(
            "{file} holds no transactions. At your bank, choose a period with transactions, "
            "download the statement again and choose it here."
        )
    if problem == "too_large":
        return _(
            "{file} is too large to read here. At your bank, download a shorter period and "
            "choose that file."
        )
    if problem == "no_currency":
        return _(
            "{file} does not say its currency. Enter the account's currency (such as EUR) and "
            "choose the file again."
        )
    if problem == "unknown_format" and columns:
        return _(
            "We do not know the layout of {file}. Below, choose which column holds what, then "
            "choose the same file again."
        )
    if problem == "unknown_format":
        return _(
            "{file} is not a statement format we can read. At your bank, download it as OFX, "
            "camt, MT940, QIF, CSV or Excel and choose that file."
        )
    return _(
        "{file} could not be read. Download it from your bank again and choose the new file. "
        "If this keeps happening, send the technical detail below to {app}."
    )


#: the date forms the upload step's column mapping offers (value, as the user reads it)
DATE_FORMATS = (
    ("%d.%m.%Y", "31.12.2025"),
    ("%d/%m/%Y", "31/12/2025"),
    ("%m/%d/%Y", "12/31/2025"),
    ("%Y-%m-%d", "2025-12-31"),
    ("%d.%m.%y", "31.12.25"),
    ("%d %b %Y", "31 Dec 2025"),
)
_ROLES = ("map_date", "map_amount", "map_debit", "map_credit", "map_description", "map_payee")


def _currency(value: str, _: Callable[[str], str]) -> str | None:
    code = value.strip().upper()
    if not code:
        return None
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise UploadRefused(
            _("Enter the currency as three letters, such as EUR, and choose the file again.")
        )
    return code


def _upload_mapping(
    form: dict[str, str], content: bytes, _: Callable[[str], str], file: str
) -> CsvMapping | None:
    """The column roles the user chose for a table no profile knows (None: none chosen). Only
    the file's own header cells may be chosen; the delimiter and the rows above the header are
    the file's, as :func:`table_layout` finds them."""
    if not form.get("map_date"):
        return None
    layout = table_layout(content)
    if layout is None:
        raise UploadRefused(
            _(
                "{file} has no row of column names to choose from. At your bank, download the "
                "statement with column names and choose that file."
            ).format(file=file)
        )
    chosen = {k: form.get(k, "") for k in _ROLES}
    unknown = [v for v in chosen.values() if v and v not in layout.columns]
    if unknown:
        raise UploadRefused(
            _(
                "{file} has no column “{column}”. Choose the columns again from the lists, "
                "then the same file."
            ).format(file=file, column=unknown[0][:80])
        )
    currency = _currency(form.get("map_currency", ""), _)
    if currency is None:
        raise UploadRefused(
            _("Enter the currency of the account, such as EUR, and choose the file again.")
        )
    date_format = form.get("map_date_format", "")
    if date_format not in {value for value, _label in DATE_FORMATS}:
        raise UploadRefused(_("Choose how the dates are written, then choose the file again."))
    decimal = "." if form.get("map_decimal") == "." else ","
    return CsvMapping(
        date_column=chosen["map_date"],
        amount_column=chosen["map_amount"] or None,
        debit_column=chosen["map_debit"] or None,
        credit_column=chosen["map_credit"] or None,
        description_columns=tuple(v for v in (chosen["map_description"],) if v),
        merchant_column=chosen["map_payee"] or None,
        currency=currency,
        date_format=date_format,
        delimiter=layout.delimiter,
        skip_lines=layout.skip_lines,
        decimal_separator=decimal,
        thousands_separator="," if decimal == "." else ".",
    )


@post("/v2/connect/answer", opt=scopes.connect(), include_in_schema=False)
async def post_answer(request: AnyRequest, data: Form) -> Redirect:
    session = _session(request)
    _check_form(request, session, data)
    interaction = session.interaction
    flow = flow_of(request)
    if session.busy or not flow.is_current(session, _form_step(data)):
        return _back()  # the same form again while (or after) the bank answered it
    _ = i18n.gettext_for(session.locale).gettext
    if isinstance(interaction, NeedsCode):
        code = data.get("code", "").strip()
        if not code or len(code) > MAX_FIELD:
            session.notice = _("Please enter {field}.").format(field=interaction.field_label)
            return _back()
        await flow.answer(session, Answer("code", code))
    elif isinstance(interaction, NeedsChoice):
        choice = data.get("choice", "")
        if choice not in {option.id for option in interaction.options}:
            session.notice = _("Please choose one of the options.")
            return _back()
        await flow.answer(session, Answer("choice", choice))
    elif isinstance(interaction, NeedsDecoupledApproval):
        await flow.poll(session)
    return _back()


@get("/v2/connect/return", opt=scopes.connect(), include_in_schema=False)
async def bank_return(request: AnyRequest) -> Response[Any]:
    """Where a redirect-SCA bank sends the user back; its query is handed to the connector.

    It acts only when it carries the ``state`` this browser's session gave its bank: a GET is
    what any site can make a browser send (the session cookie is ``SameSite=Lax``), so without
    the ``state`` it changes nothing (S28). With the ``state`` of a session this browser does
    not hold, the bank sent the user back to another browser: that connect ends there with
    the way back to the app.
    """
    if not request.url.query:
        return _fragment_relay(request)
    flow = flow_of(request)
    state = request.query_params.get("state", "")[:MAX_FIELD]
    session: ConnectSession | None = None
    with contextlib.suppress(SessionGone):
        session = flow.get(_cookie_value(request))
    if session is not None and state and flow.returns_here(session, state):
        usage.attribute(session.app_id)
        if isinstance(session.interaction, NeedsRedirect):
            # ``state`` goes along: an OAuth2 bank sends it back, and the connector checks it too
            params = {k: v[:MAX_RETURN_VALUE] for k, v in request.query_params.items()}
            await flow.answer(session, Answer("redirect", params=params))
        return _back()
    found = flow.by_state(state) if state else None
    if isinstance(found, ConnectSession):
        return ended_page(request, flow.returned_elsewhere(found))
    if isinstance(found, EndedSession):
        return ended_page(request, found)
    if session is not None:
        usage.attribute(session.app_id)
        return _back()  # not this session's redirect (a cross-site link): nothing happens
    raise ConnectEnded(None)


#: the return step's page for a bank that answered in the fragment (templates/relay.html: the
#: only script of the connect pages besides the waiting pages' poll; a fragment reaches no
#: server, so only the browser can pass it on)
RELAY_CSP = (
    "default-src 'none'; script-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _fragment_relay(request: AnyRequest) -> Response[str]:
    # the session's language when this browser holds one, else the browser's
    locale = i18n.from_browser(browser_language(request)) or i18n.DEFAULT
    with contextlib.suppress(SessionGone):
        locale = flow_of(request).get(_cookie_value(request)).locale
    return templates.render(
        "relay.html", {}, locale, headers=page_headers({"Content-Security-Policy": RELAY_CSP})
    )


@get("/v2/connect/static/return.js", opt=scopes.connect(), include_in_schema=False)
async def fragment_script() -> File:
    return File(
        path=STATIC / "return.js",
        media_type="text/javascript",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=3600"},
    )


#: sent by static/poll.js: the background check must not end a finished session itself
POLL_HEADER = "x-bankhub-poll"
#: the waiting pages' policy: the connect pages' own, with our one polling script
POLL_CSP = CSP.replace("script-src 'none'", "script-src 'self'; connect-src 'self'")


@get("/v2/connect/static/poll.js", opt=scopes.connect(), include_in_schema=False)
async def poll_script() -> File:
    return File(
        path=STATIC / "poll.js",
        media_type="text/javascript",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@post("/v2/connect/cancel", opt=scopes.connect(), include_in_schema=False)
async def post_cancel(request: AnyRequest, data: Form) -> Redirect:
    session = _session(request)
    _check_form(request, session, data)
    flow_of(request).cancel(session)
    await flow_of(request).cancel_payment(session)
    return _back()


@get("/v2/connect/static/connect.css", opt=scopes.connect(), include_in_schema=False)
async def stylesheet() -> File:
    return File(
        path=STATIC / "connect.css",
        media_type="text/css",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=3600"},
    )


# --- App Templates: the app's stylesheet and logo ------------------------------------------------

#: a client-id as ``partners.services`` makes them, and the hashes in the URLs
_BRAND_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BRAND_HASH = re.compile(r"^[0-9a-f]{32}$")


async def _branded_app(request: AnyRequest, client_id: str) -> App:
    """The app the URL names; its template is read acting for that app only (S14)."""
    if not _BRAND_ID.match(client_id):
        raise NotFound(ErrorCode.NOT_FOUND)
    hub = hub_of(request)
    async with hub.db.transaction() as db:
        app = (await db.execute(select(App).where(App.client_id == client_id))).scalar_one_or_none()
    if app is None:
        raise NotFound(ErrorCode.NOT_FOUND)
    tenancy.choose(app.id)
    return app


@get(
    "/v2/connect/brand/{client_id:str}/{name:str}",
    opt=scopes.connect(),
    include_in_schema=False,
)
async def brand_file(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], name: FromPath[str]
) -> Response[Any]:
    """``<hash>.css``: the app's colours; ``logo-<hash>``: its logo. Public, like the page
    that shows them; anything but the current content's hash is not found, so a page never
    gets another version than the one it names (and, under ``/v2``, nothing is cached: S24)."""
    app = await _branded_app(request, client_id)
    if name.endswith(".css") and _BRAND_HASH.match(name[:-4]):
        async with hub.db.transaction() as db:
            row = await branding.template_of(db, app.id)
        primary = row.color_primary if row else None
        secondary = row.color_secondary if row else None
        if branding.stylesheet_hash(primary, secondary) != name[:-4]:
            raise NotFound(ErrorCode.NOT_FOUND)
        return Response(
            content=branding.stylesheet(primary, secondary),
            media_type="text/css",
            headers={"X-Content-Type-Options": "nosniff"},
        )
    if name.startswith("logo-") and _BRAND_HASH.match(name[5:]):
        async with hub.db.transaction() as db:
            found = await branding.logo_bytes(db, app.id, name[5:])
        if found is None:
            raise NotFound(ErrorCode.NOT_FOUND)
        content, media_type = found
        return Response(
            content=content,
            media_type=media_type,
            headers={
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": IMAGE_CSP,
                "Content-Disposition": "inline",
                "Cross-Origin-Resource-Policy": "same-origin",
            },
        )
    raise NotFound(ErrorCode.NOT_FOUND)


CONNECT_ROUTES = [
    open_connect,
    show_session,
    post_consent,
    post_credentials,
    post_upload,
    post_answer,
    bank_return,
    fragment_script,
    poll_script,
    post_cancel,
    stylesheet,
    brand_file,
]
