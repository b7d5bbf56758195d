"""The connect flow: consent → credentials → the bank's interactive steps → first fetch → callback.

State lives in process memory, keyed by a random id held in the user's cookie: the connector
instance (which may hold credentials while it logs in) must never be written anywhere, so a
connect session is served by the process that started it. Another process that receives one of
its requests passes it there (:mod:`bankhub.connect.routing`: the database says which process
holds the session, never what is in it), or says plainly why it cannot. Sessions end after 5
idle minutes or 5 wrong answers (PSD2 RTS art. 4).

Every call to the bank runs in a task the session owns, one at a time: the form that started
it is answered as soon as the bank has answered, or after ``connect_step_wait_seconds`` with a
progress page that reloads itself (no JavaScript) until the bank has. A second submit while a
call runs starts nothing; the idle timeout cancels the call (and with it the credentials the
call held).

A session that ended leaves a small record (:class:`EndedSession`: never credentials, never a
login-secret) for as long as its link lives, so that whatever the browser shows next (back
after success, a reload, the idle timeout, the bank's redirect arriving in another browser)
still offers the way back to the app, with a callback the app can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from babel.dates import format_time

from bankhub import i18n
from bankhub.catalogue import Service
from bankhub.clock import as_utc
from bankhub.connect.routing import Elsewhere, Routing
from bankhub.connectors.base import (
    AccountLocked,
    Answer,
    AuthFlow,
    ConnectorFailure,
    ConnectorInfo,
    ConsentExpired,
    Interaction,
    InteractionRejected,
    InvalidCredentials,
    NeedsDecoupledApproval,
    NeedsRedirect,
    PasswordExpired,
    PaymentStatus,
    ProviderUnavailable,
    RateLimited,
)
from bankhub.connectors.statement import StatementConnector
from bankhub.db import tenancy
from bankhub.errors import ErrorCode
from bankhub.hub import Hub
from bankhub.logins import services as logins
from bankhub.logins.models import ConnectToken, Login
from bankhub.observability import metrics
from bankhub.partners import branding, modes
from bankhub.partners.models import App
from bankhub.payments import services as payments
from bankhub.payments.sending import PaymentAuthorisation, link_ending
from bankhub.security.secrets import new_uuid_shaped_secret
from bankhub.statements import ParsedStatement
from bankhub.sync import feed, identity
from bankhub.sync.engine import ConnectorRun
from bankhub.sync.refresh import schedule_next
from bankhub.usage import counters as usage

log = logging.getLogger("bankhub.connect")


class Step(StrEnum):
    CONSENT = "consent"
    CREDENTIALS = "credentials"
    INTERACTION = "interaction"
    PROGRESS = "progress"
    DONE = "done"
    FAILED = "failed"


#: a login step: made into a coroutine only once its task runs, so that a call cancelled before
#: it started leaves nothing behind
BankCall = Callable[[], Awaitable[None]]
#: ended sessions remembered at most (the oldest go first); each is a few hundred bytes
MAX_ENDED = 10_000
#: how a session ended (usage counts) → its stage of the operator's funnel (metrics)
_ENDINGS = {
    usage.CONNECT_SUCCESS: "succeeded",
    usage.CONNECT_FAILED: "failed",
    usage.CONNECT_CANCELLED: "cancelled",
    usage.CONNECT_ABANDONED: "abandoned",
}
#: what an end page says: the callback's payload, the heading, the message
Ending = tuple[dict[str, Any], str, str]
#: a message in the page's language (``gettext`` of its catalog)
Translate = Callable[[str], str]


def sentence(text: str) -> str:
    """Bank messages come with or without a final stop; ours follow them as a new sentence."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def callback_location(callback_url: str, payload: dict[str, Any]) -> str:
    """The seed's callback: the URL-encoded JSON appended to the callback URL's path."""
    encoded = quote(json.dumps(payload, separators=(",", ":")), safe="")
    parts = urlsplit(callback_url)
    path = parts.path.rstrip("/") + "/" + encoded
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def token_expire(message: str) -> dict[str, Any]:
    """The callback of a connect that can go no further (docs/api.md: ``TokenExpire``)."""
    return {"status": "error", "error": str(ErrorCode.TOKEN_EXPIRE), "message": message}


@dataclass(frozen=True, slots=True)
class EndedSession:
    """What is left of a connect session once it ended: the way back to the app, and why."""

    token_id: str
    app_id: int
    app_name: str
    service: Service
    brand: branding.Brand | None
    callback_url: str
    #: the origins the app lets frame its connect page (S27), so the way back shows there too
    frame_origins: tuple[str, ...]
    #: the payload the way back carries (never a login-secret)
    outcome: dict[str, Any]
    heading: str
    message: str
    ended_at: datetime
    #: where trying again may help (the session's own page), when it may
    retry_url: str | None = None
    #: the page's status when not the outcome's own (503: try again)
    status: int | None = None
    #: the language the page speaks (the session's, else the link's or the bank's country's)
    locale: str = i18n.DEFAULT

    @property
    def code(self) -> str:
        return str(self.outcome.get("error") or self.outcome.get("status", ""))

    @property
    def status_code(self) -> int:
        """The page's HTTP status: ``TokenExpire``'s 400, or 200 for an outcome shown again."""
        if self.status is not None:
            return self.status
        return 400 if self.code == ErrorCode.TOKEN_EXPIRE else 200

    def callback(self) -> str:
        return callback_location(self.callback_url, self.outcome)


@dataclass(eq=False)
class ConnectSession:
    id: str
    token_id: str
    app_id: int
    app_name: str
    customer_id: str
    service: Service
    info: ConnectorInfo
    callback_url: str
    reconnect_login_id: int | None
    csrf: str
    last_seen: datetime
    #: the history depth the consent page shows (as far back as the bank keeps); ``None``: the
    #: bank's depth when the first fetch starts
    history_days: int | None = None
    step: Step = Step.CONSENT
    attempts: int = 0
    notice: str | None = None
    #: the header cells of an uploaded table no bank profile knows, offered for column mapping
    upload_columns: tuple[str, ...] = ()
    #: what the parser said of the last file it could not read: the technical detail (in
    #: English) shown under the upload step's notice, which says it in the user's language
    upload_detail: str | None = None
    run: ConnectorRun | None = None
    interaction: Interaction | None = None
    #: the decoupled prompt has been shown once; later visits of the page poll the bank
    prompt_shown: bool = False
    #: the call to the bank under way (a login step, then the first fetch); one at a time
    task: asyncio.Task[None] | None = None
    #: set when the running login step has its answer from the bank (the first fetch may follow)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    #: counts the bank calls started; a form carries the number it was shown with, so a form
    #: sent twice (a double click, the back button) starts nothing the second time
    form_step: int = 0
    #: the ``state`` the bank's redirect must bring back to the return step: it is part of the
    #: return URL the bank is given, so a cross-site navigation cannot know it (S28)
    return_state: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: the payload sent to the callback when the flow ends (success, error or cancelled)
    outcome: dict[str, Any] | None = None
    failure_message: str | None = None
    base_state: dict[str, Any] = field(default_factory=dict)
    #: the app opted in to the credential vault: keep the credentials until the login exists
    vault: bool = False
    vault_credentials: dict[str, str] | None = None
    #: the app's connect-page branding (App Templates), read when the session opened
    brand: branding.Brand | None = None
    #: the origins the app allowed to frame the connect page when the session opened
    frame_origins: tuple[str, ...] = ()
    #: a payment's authorisation (docs/payments.md): the login is followed by the payment,
    #: not by the first fetch
    payment: PaymentAuthorisation | None = None
    payment_summary: payments.PaymentSummary | None = None
    #: the language of every page of this connect (:func:`bankhub.i18n.choose`)
    locale: str = i18n.DEFAULT
    #: what the user typed in the credentials form's plain text fields (the username), shown
    #: again after a wrong password; never a secret field. Memory only, like the session.
    kept_fields: dict[str, str] = field(default_factory=dict)
    #: the credentials form's fields the last notice is about (``aria-invalid``)
    invalid_fields: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.step in (Step.DONE, Step.FAILED)

    @property
    def busy(self) -> bool:
        """A call to the bank is under way."""
        return self.task is not None and not self.task.done()

    @property
    def display_name(self) -> str:
        """The name the app chose for its end users (App Templates), else its own."""
        return (self.brand.display_name if self.brand else None) or self.app_name

    def callback(self) -> str:
        return callback_location(self.callback_url, self.outcome or {"status": "error"})


class SessionGone(Exception):
    """The connect session is unknown or idle too long (shown as ``TokenExpire``).

    ``ended``: what is left of it when it ended in this process, for the way back.
    """

    def __init__(self, sid: str | None, ended: EndedSession | None = None) -> None:
        super().__init__(sid)
        self.ended = ended


class _NotTheSameIdentity(Exception):
    """A reconnect logged in as another bank user: its unit of work must store nothing."""


class ConnectFlow:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._sessions: dict[str, ConnectSession] = {}
        self._ended: OrderedDict[str, EndedSession] = OrderedDict()
        #: a redirect's ``state`` → the id of the session it belongs to (live or ended)
        self._states: dict[str, str] = {}
        #: which process holds which session, for the other processes (and the hop to here)
        self.routing = Routing(hub)

    def holds(self, sid: str | None, state: str | None = None) -> bool:
        """Whether this process holds (or remembers the end of) the session the cookie names,
        or the one the bank redirect's ``state`` belongs to."""
        if sid and (sid in self._sessions or sid in self._ended):
            return True
        return bool(state) and state in self._states

    async def close(self) -> None:
        """The process is stopping: its sessions end, and the other processes are told."""
        await self.routing.stop()

    # --- session lifecycle ----------------------------------------------------------------

    def _sweep(self, now: datetime) -> None:
        idle = self.hub.settings.connect_idle
        for sid in [sid for sid, s in self._sessions.items() if now - s.last_seen > idle]:
            self._drop(sid)
        # An ended session is remembered as long as its link (and cookie) could be used.
        keep = self.hub.settings.token_ttl
        while self._ended:
            sid, ended = next(iter(self._ended.items()))
            if now - as_utc(ended.ended_at) <= keep and len(self._ended) <= MAX_ENDED:
                break
            self._ended.pop(sid)
        live = self._sessions.keys() | self._ended.keys()
        for state in [state for state, sid in self._states.items() if sid not in live]:
            del self._states[state]

    def _drop(self, sid: str) -> None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        if not session.finished:
            self._count(session, usage.CONNECT_ABANDONED)
        session.vault_credentials = None
        if session.task is not None and not session.task.done():
            session.task.cancel()
        self._ended[sid] = self._ended_record(session)

    def _ended_record(self, session: ConnectSession) -> EndedSession:
        """How the page answers once ``session`` is over (see :class:`EndedSession`)."""
        outcome = session.outcome or {}
        bank, app = session.service.name, session.display_name
        _ = i18n.gettext_for(session.locale).gettext
        if session.step == Step.FAILED:
            heading = _("We could not connect to {bank}").format(bank=bank)
            message = session.failure_message or ""
        elif outcome.get("status") == "cancelled":
            heading = _("This connection was cancelled")
            message = _("Nothing was shared with {app}.").format(app=app)
        elif session.step == Step.DONE and session.payment is not None:
            heading = (
                _("This payment was cancelled")
                if session.payment.cancelling
                else _("This payment was sent to your bank")
            )
            message = _("Return to {app} to see where it stands.").format(app=app)
        elif session.step == Step.DONE:
            # The success callback carried the login-secret once; it is never shown again.
            heading = _("{bank} is connected").format(bank=bank)
            message = _(
                "This connection was completed already. Return to {app} to see it; to connect "
                "again, start from there."
            ).format(app=app)
            outcome = token_expire("This connect link was used already; its connection stands.")
        else:
            minutes = self.hub.settings.connect_idle_seconds // 60
            heading = _("This connection has timed out")
            message = _(
                "Nothing happened here for {minutes} minutes, so the connection to {bank} was "
                "stopped. Return to {app} to start again."
            ).format(minutes=minutes, bank=bank, app=app)
            outcome = token_expire(f"The connect session ended after {minutes} idle minutes.")
        return EndedSession(
            token_id=session.token_id,
            app_id=session.app_id,
            app_name=session.display_name,
            service=session.service,
            brand=session.brand,
            callback_url=session.callback_url,
            frame_origins=session.frame_origins,
            outcome=outcome,
            heading=heading,
            message=message,
            ended_at=self.hub.clock(),
            locale=session.locale,
        )

    def get(self, sid: str | None) -> ConnectSession:
        now = self.hub.clock()
        self._sweep(now)
        session = self._sessions.get(sid or "")
        if session is None:
            raise SessionGone(sid, self._ended.get(sid or ""))
        session.last_seen = now
        # S14: the page's work (and the first fetch it starts) touches this app's rows only
        tenancy.choose(session.app_id)
        return session

    def end(self, session: ConnectSession) -> None:
        self._drop(session.id)

    def _count(self, session: ConnectSession, outcome: str) -> None:
        """Usage counts (docs/usage.md): how each connect session ended, once."""
        metrics.connect_stage(_ENDINGS[outcome])
        self.hub.usage.connect(
            self.hub.clock(),
            session.app_id,
            outcome,
            reconnect=session.reconnect_login_id is not None,
        )

    async def open(self, token_id: str, accept_language: str | None = None) -> ConnectSession:
        """Claim the single-use token and start a session (raises ``TokenUnusable``); its
        language is the token's, else the browser's, else the bank's country's."""
        hub = self.hub
        sid, return_state = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        # The token names the app (claim_token chooses it), whatever session the browser had.
        tenancy.choose(None)
        async with hub.db.transaction() as db:
            token = await logins.claim_token(db, hub.clock, token_id)
            app = await db.get(App, token.app_id)
            service = hub.catalogue.get(token.service_id)
            if service is None or app is None:
                raise logins.TokenUnusable(token_id)
            # a token made before the operator disabled its bank, or before the app's mode
            # changed: refused, and the token stays unused
            logins.require_service(hub.catalogue, service.id)
            modes.require_allowed(app, service)
            base_state: dict[str, Any] = {}
            if token.login_id is not None:
                login = await db.get(Login, token.login_id)
                base_state = hub.engine.state_of(login) if login else {}
            brand = branding.brand_of(app, await branding.template_of(db, app.id))
            paid = await payments.for_token(db, token.id)
            if paid is not None and (paid.status != "pending_authorisation" or paid.sent_at):
                raise logins.TokenUnusable(token_id)  # cancelled or expired meanwhile
            cancelled = None if paid else await payments.for_cancel_token(db, token.id)
            if cancelled is not None:
                if payments.final(cancelled) or cancelled.bank_payment_id is None:
                    raise logins.TokenUnusable(token_id)  # final meanwhile: nothing to cancel
                # the account holder authorises the cancellation in the payment's bank session
                base_state = payments.open_state(hub.keyring, cancelled)
                paid = cancelled
            shown = None if paid is None else await payments.summary(db, hub.keyring, paid)
            # claimed and held here, or neither
            await self.routing.remember(
                db, sid=sid, state=return_state, token_id=token.id, now=hub.clock()
            )
        info = hub.registry.info(service.connector)
        session = ConnectSession(
            id=sid,
            token_id=token.id,
            app_id=app.id,
            app_name=app.name,
            customer_id=token.customer_id,
            service=service,
            info=info,
            callback_url=token.callback_url,
            reconnect_login_id=token.login_id,
            csrf=secrets.token_urlsafe(32),
            last_seen=hub.clock(),
            history_days=hub.engine.history_days(service),
            base_state=base_state,
            vault=app.credential_vault,
            brand=brand,
            frame_origins=tuple(app.frame_origins or ()),
            return_state=return_state,
            payment=None
            if paid is None
            else PaymentAuthorisation(
                hub.db, hub.keyring, hub.clock, app.id, paid.id, cancelling=cancelled is not None
            ),
            payment_summary=shown,
            locale=i18n.choose(token.locale, accept_language, service.country_code),
        )
        self._sessions[session.id] = session
        self._states[session.return_state] = session.id
        metrics.connect_stage("opened")
        return session

    async def _way_back(
        self,
        token_id: str,
        ending: Callable[[ConnectToken, Translate], Ending],
        accept_language: str | None = None,
        **page: Any,
    ) -> EndedSession | None:
        """An end page for the connect of ``token_id``, read from its token (which names the
        app, its branding and its callback); ``ending`` says what the page and the callback
        say (the message may name ``{app}`` and ``{bank}``). ``None`` when the id names no
        token at all."""
        tenancy.choose(None)
        async with self.hub.db.transaction() as db:
            token = await logins.find_token(db, token_id)
            if token is None:
                return None
            await tenancy.enter(db, token.app_id)
            app = await db.get(App, token.app_id)
            service = self.hub.catalogue.get(token.service_id)
            if app is None or service is None:
                return None
            brand = branding.brand_of(app, await branding.template_of(db, app.id))
        name = (brand.display_name if brand else None) or app.name
        locale = i18n.choose(token.locale, accept_language, service.country_code)
        outcome, heading, message = ending(token, i18n.gettext_for(locale).gettext)
        return EndedSession(
            token_id=token.id,
            app_id=app.id,
            app_name=name,
            service=service,
            brand=brand,
            callback_url=token.callback_url,
            frame_origins=tuple(app.frame_origins or ()),
            outcome=outcome,
            heading=heading,
            message=message.format(app=name, bank=service.name),
            ended_at=self.hub.clock(),
            locale=locale,
            **page,
        )

    async def unusable_link(
        self, token_id: str, accept_language: str | None = None
    ) -> EndedSession | None:
        """The way back for a link that is used or expired: its token still names the app and
        its callback. ``None`` when the link names no token at all."""

        paid = await self._payment_of_link(token_id)

        def ending(token: ConnectToken, _: Translate) -> Ending:
            said = None if paid is None else link_ending(*paid, translate=_)
            if said is not None:
                return said
            used = token.used_at is not None
            why = "was used already" if used else "has expired"
            return (
                token_expire(f"The connect link {why}."),
                _("This link can no longer be used"),
                _("This connect link was used already. Return to {app} to start again.")
                if used
                else _("This connect link has expired. Return to {app} to start again."),
            )

        # the link cannot be used, whatever the page says of its payment: TokenExpire's 400
        return await self._way_back(token_id, ending, accept_language, status=400)

    async def _payment_of_link(self, token_id: str) -> tuple[str, PaymentStatus, bool] | None:
        """The payment a connect link authorises (or whose cancellation it authorises):
        its id, its status, and whether the link is the cancellation's."""
        tenancy.choose(None)
        async with self.hub.db.transaction() as db:
            token = await logins.find_token(db, token_id)
            if token is None:
                return None
            await tenancy.enter(db, token.app_id)
            paid = await payments.for_token(db, token.id)
            cancelling = paid is None
            if paid is None:
                paid = await payments.for_cancel_token(db, token.id)
            if paid is None:
                return None
            return paid.id, PaymentStatus(paid.status), cancelling

    async def elsewhere(
        self, token_id: str, why: Elsewhere, accept_language: str | None = None
    ) -> EndedSession | None:
        """The page for a request this process cannot pass to the process that holds its
        session (see :mod:`bankhub.connect.routing`): what happened, in plain words, and the
        way back to the app. Never "expired": the link did not expire."""
        if why is Elsewhere.STOPPED:

            def stopped(_token: ConnectToken, _: Translate) -> Ending:
                return (
                    token_expire(
                        "The connect session ended: the bankhub server that held it stopped."
                    ),
                    _("This connection was interrupted"),
                    _(
                        "The server that was handling your connection to {bank} was restarted, "
                        "so this connection cannot go on. Return to {app} to see where things "
                        "stand or to start again."
                    ),
                )

            return await self._way_back(token_id, stopped, accept_language)

        def unreachable(_token: ConnectToken, _: Translate) -> Ending:
            return (
                token_expire(
                    "The connect session is held by another bankhub server, which could not "
                    "be reached."
                ),
                _("Your connection is open on another server"),
                _(
                    "Your connection to {bank} is being handled by another of our servers, "
                    "which could not be reached just now. Try again in a moment; if this keeps "
                    "happening, return to {app} and start again."
                ),
            )

        return await self._way_back(
            token_id, unreachable, accept_language, retry_url="/v2/connect/session", status=503
        )

    # --- the bank's redirect ----------------------------------------------------------------

    def return_url(self, session: ConnectSession, public_url: str) -> str:
        """Where the bank sends the user back: the return step, with the session's ``state``."""
        return f"{public_url}/v2/connect/return?state={quote(session.return_state)}"

    def returns_here(self, session: ConnectSession, state: str) -> bool:
        """Whether ``state`` is the one this session gave its bank (constant-time)."""
        return hmac.compare_digest(state.encode(), session.return_state.encode())

    def by_state(self, state: str) -> ConnectSession | EndedSession | None:
        """The session, live or ended, whose bank redirect carries ``state``."""
        sid = self._states.get(state)
        if sid is None:
            return None
        return self._sessions.get(sid) or self._ended.get(sid)

    def returned_elsewhere(self, session: ConnectSession) -> EndedSession:
        """The bank sent the user back to a browser without this session (a banking app opened
        the link in another browser): the flow cannot go on there, and the bank's answer is not
        used. Both browsers offer the way back to the app with ``TokenExpire``."""
        if not session.finished:
            if session.task is not None and not session.task.done():
                session.task.cancel()
            bank = session.service.name
            _ = i18n.gettext_for(session.locale).gettext
            self._finish_failed(
                session,
                token_expire(f"The user came back from {bank} in another browser."),
                _(
                    "You came back from {bank} in another browser than the one you started "
                    "in, so this connection cannot go on. Return to {app} and start again in "
                    "one browser."
                ).format(bank=bank, app=session.display_name),
                usage.CONNECT_FAILED,
            )
        return self._ended_record(session)

    # --- steps ----------------------------------------------------------------------------

    def agree(self, session: ConnectSession) -> None:
        if session.step == Step.CONSENT:
            session.step = Step.CREDENTIALS

    def cancel(self, session: ConnectSession) -> None:
        if session.step == Step.PROGRESS:
            return  # logged in and reading: the first fetch finishes, as the page says
        session.vault_credentials = None
        if session.task is not None and not session.task.done():
            session.task.cancel()
        if not session.finished:
            session.outcome = {"status": "cancelled"}
            if session.payment is not None:
                session.outcome["payment_id"] = session.payment.payment_id
            session.step = Step.DONE
            self._count(session, usage.CONNECT_CANCELLED)

    async def cancel_payment(self, session: ConnectSession) -> None:
        """The user cancelled a payment's authorisation: a payment not sent yet is cancelled."""
        if session.payment is not None and session.outcome == {
            "status": "cancelled",
            "payment_id": session.payment.payment_id,
        }:
            await session.payment.cancelled_by_user()

    def is_current(self, session: ConnectSession, form_step: str | None) -> bool:
        """Whether a form was shown for the step the session is at now (a form without the
        number, from a client that does not send it, counts as current)."""
        return form_step is None or form_step == str(session.form_step)

    async def submit_credentials(
        self,
        session: ConnectSession,
        credentials: dict[str, str],
        public_url: str,
        client_ip: str | None = None,
    ) -> None:
        if session.step != Step.CREDENTIALS or session.busy:
            return
        run = self.hub.engine.build(
            session.service,
            session.base_state,
            return_url=self.return_url(session, public_url),
            public_url=public_url,
            psu_ip_address=client_ip,
            language=session.locale,
            payment=session.payment is not None,
        )
        session.run = run
        if session.vault:
            session.vault_credentials = dict(credentials)
        # The call's own copy: the page clears its copy when the request ends, the call
        # clears this one when the bank has answered (or the call is cancelled).
        held = dict(credentials)

        async def authenticate() -> None:
            try:
                await run.connector.authenticate(held)
            finally:
                held.clear()

        metrics.connect_stage("credentials_submitted")
        await self._start(session, authenticate)

    async def submit_statement(
        self, session: ConnectSession, parsed: ParsedStatement, public_url: str
    ) -> None:
        """A statement upload, parsed by the page: the file is the login, then the first fetch."""
        if session.step != Step.CREDENTIALS or session.busy:
            return
        run = self.hub.engine.build(session.service, session.base_state, public_url=public_url)
        if not isinstance(run.connector, StatementConnector):
            return
        run.connector.load(parsed)
        session.run = run
        metrics.connect_stage("credentials_submitted")
        await self._start(session, run.connector.open_file)

    async def answer(self, session: ConnectSession, answer: Answer) -> None:
        if session.step != Step.INTERACTION or session.run is None or session.busy:
            return
        connector = session.run.connector
        payment, state = session.payment, session.run.state
        if payment is not None and payment.bank_payment_id is not None:
            # the bank's authorisation of the payment, not the login
            await self._start(session, lambda: payment.authorise(connector, state, answer))
            return
        await self._start(session, lambda: connector.resume(answer))

    async def poll(self, session: ConnectSession) -> None:
        """Ask the bank whether the user approved; the first visit only shows the bank's prompt."""
        if not isinstance(session.interaction, NeedsDecoupledApproval) or session.busy:
            return
        if not session.prompt_shown:
            session.prompt_shown = True
            return
        await self.answer(session, Answer.poll())

    async def _start(self, session: ConnectSession, call: BankCall) -> None:
        """Run ``call`` (a login step) in the session's task, then wait a moment for it: a
        bank that answers at once leads straight to the next page, a slow one to the
        progress page. Callers check ``busy`` first, with no await in between."""
        session.form_step += 1
        session.notice = None
        answered = session.answered = asyncio.Event()
        session.task = asyncio.create_task(self._drive(session, call, answered))
        wait = self.hub.settings.connect_step_wait_seconds
        if wait > 0:
            # Past the wait, the progress page takes over; the call goes on in its task.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), wait)

    async def _drive(
        self, session: ConnectSession, call: BankCall, answered: asyncio.Event
    ) -> None:
        """The session's task: one login step, then the first fetch once the bank let us in."""
        try:
            logged_in = await self._login_step(session, call)
            if logged_in and session.payment is not None:
                await self._pay(session, session.payment)
        finally:
            answered.set()
        if logged_in and session.payment is None:
            await self._first_fetch(session)

    async def _pay(self, session: ConnectSession, payment: PaymentAuthorisation) -> None:
        """Logged in (or the bank's authorisation step answered): send the payment once, and
        end the flow when the bank asks nothing more of the user."""
        run = session.run
        assert run is not None  # noqa: S101 - set before the task starts  # nosec B101
        if payment.cancelling and not payment.cancellation_started:
            started = await self._login_step(
                session, lambda: payment.start_cancellation(run.connector, run.state)
            )
            if not started:
                return
        elif payment.bank_payment_id is None:
            sent = await self._login_step(session, lambda: payment.send(run.connector, run.state))
            if not sent:
                return
        session.run = None
        outcome = session.outcome = payment.outcome()
        if outcome["status"] == "success":
            session.step = Step.DONE
            self._count(session, usage.CONNECT_SUCCESS)
        else:
            message = sentence(str(outcome.get("message", "")))
            _ = i18n.gettext_for(session.locale).gettext
            said = (
                _("{bank} did not cancel the payment: {message}")
                if payment.cancelling
                else _("{bank} did not make the payment: {message}")
            )
            self._finish_failed(
                session,
                outcome,
                said.format(bank=session.service.name, message=message),
                usage.CONNECT_FAILED,
            )

    async def _login_step(self, session: ConnectSession, call: BankCall) -> bool:
        """Run one connector call and move the session to wherever its outcome leads; True
        when the user is logged in and the first fetch may start."""
        try:
            await self.hub.engine.guarded(call())
        except Interaction as interaction:
            if type(interaction) is not type(session.interaction):
                session.prompt_shown = False
            session.interaction = interaction
            session.step = Step.INTERACTION
            return False
        except (InvalidCredentials, InteractionRejected) as failure:
            if isinstance(session.interaction, NeedsRedirect):
                # The user refused the consent on the bank's own page: they chose not to connect.
                await self._fail(session, failure, None, cancelled=True)
                return False
            session.attempts += 1
            if session.attempts >= self.hub.settings.connect_max_attempts:
                await self._fail(session, failure, ErrorCode.CREDENTIAL_INVALID)
            else:
                session.notice = wrong_answer(
                    session.locale,
                    session.service.name,
                    tried=session.attempts,
                    limit=self.hub.settings.connect_max_attempts,
                    login=session.step == Step.CREDENTIALS,
                )
                if session.step == Step.CREDENTIALS:
                    session.invalid_fields = tuple(
                        f.name for f in session.info.credential_fields if f.kind != "file"
                    )
            return False
        except ConnectorFailure as failure:
            await self._fail(session, failure, None)
            return False
        except Exception as exc:  # noqa: BLE001 - a broken connector must not leave a spinner
            # Its type only: a connector's own message could quote what the user typed.
            log.error(
                "login step failed for service %s: %s", session.service.id, type(exc).__name__
            )
            await self._fail(
                session,
                ConnectorFailure("The bank answered in a way bankhub did not expect"),
                ErrorCode.INTERNAL_ERROR,
            )
            return False
        session.interaction = None
        session.step = Step.PROGRESS
        return True

    def _finish_failed(
        self, session: ConnectSession, outcome: dict[str, Any], message: str, counted: str
    ) -> None:
        session.outcome = outcome
        session.failure_message = message
        session.vault_credentials = None
        session.step = Step.FAILED
        session.run = None
        self._count(session, counted)
        if counted == usage.CONNECT_FAILED:
            metrics.connect_failed(str(outcome.get("error") or outcome.get("status") or "unknown"))

    async def _fail(
        self,
        session: ConnectSession,
        failure: ConnectorFailure,
        code: ErrorCode | None,
        *,
        cancelled: bool = False,
        record: bool = True,
    ) -> None:
        """End the flow on ``failure``; a reconnect's login records it (unless ``record`` is
        False: the failure says nothing of the login's own bank access)."""
        unavailable = failure.status in ("provider_unavailable", "rate_limited")
        error = (
            str(code)
            if code
            else (str(ErrorCode.CONNECT_ERROR) if unavailable else f"login_{failure.status}")
        )
        if cancelled:
            outcome = {"status": "cancelled", "message": failure.message}
        else:
            outcome = {"status": "error", "error": error, "message": failure.message}
        if session.payment is not None:
            outcome["payment_id"] = session.payment.payment_id
        self._finish_failed(
            session,
            outcome,
            in_plain_words(
                failure,
                session.service.name,
                session.display_name,
                self.hub.clock(),
                session.locale,
                tried=session.attempts if code == ErrorCode.CREDENTIAL_INVALID else 0,
                declined=cancelled,
            ),
            usage.CONNECT_CANCELLED if cancelled else usage.CONNECT_FAILED,
        )
        if session.reconnect_login_id is not None and not cancelled and record:
            hub = self.hub
            async with hub.db.transaction() as db:
                login = await db.get(Login, session.reconnect_login_id)
                if login is not None:
                    await hub.engine.record_failure(db, login, failure)

    async def _first_fetch(self, session: ConnectSession) -> None:
        hub = self.hub
        run = session.run
        assert run is not None  # noqa: S101 - set before the task starts  # nosec B101
        started = hub.clock()
        try:
            # A file holds what it holds: no fixed history window for a statement upload.
            since = (
                None
                if AuthFlow.FILE in session.info.auth_flows
                else hub.engine.history_start(session.service, session.history_days)
            )
            result = await hub.engine.fetch(run, since)
        except ConnectorFailure as failure:
            await self._fail(session, failure, None)
            return
        except Exception:  # a broken connector must not leave the user on a spinner forever
            log.exception("first fetch failed for service %s", session.service.id)
            await self._fail(
                session,
                ConnectorFailure("The bank answered in a way bankhub did not expect"),
                ErrorCode.INTERNAL_ERROR,
            )
            return
        shown = identity.evidence(hub.engine, session.service.connector, run.connector, result)
        now = hub.clock()
        try:
            async with hub.db.transaction(write=True) as db:
                login: Login | None = None
                if session.reconnect_login_id is not None:
                    login = await db.get(Login, session.reconnect_login_id)
                    if login is not None and not await identity.is_same(
                        db, hub.engine, login, shown
                    ):
                        raise _NotTheSameIdentity
                if login is None:
                    login, secret = logins.add_login(
                        db,
                        hub.hasher,
                        now,
                        app_id=session.app_id,
                        customer_id=session.customer_id,
                        service_id=session.service.id,
                    )
                else:
                    # A reconnect issues a fresh login-secret; the previous one stops working.
                    secret = new_uuid_shaped_secret()
                    login.secret_hash = hub.hasher.hash(secret, purpose=logins.LOGIN_SECRET)
                login.consent_notice_days = 0  # a renewed consent is announced afresh
                identity.remember(login, shown)
                await db.flush()
                if session.vault_credentials is not None:
                    login.vault_credentials_enc = hub.engine.seal_credentials(
                        login, session.vault_credentials
                    )
                session.vault_credentials = None
                summary = await hub.engine.apply(db, login, result)
                feed.record(
                    db,
                    app_id=login.app_id,
                    login_id=login.id,
                    kind="connect",
                    connector=session.service.connector,
                    started_at=started,
                    finished_at=hub.clock(),
                    summary=summary,
                )
                logins.grant_consent(login, session.info, now, session.history_days)
                schedule_next(hub.engine, login, session.service, now)
                login_id = login.id
        except _NotTheSameIdentity:
            await self._refuse_other_identity(session, result.state)
            return
        session.run = None
        session.outcome = {"status": "success", "login_id": login_id, "secret": secret}
        session.step = Step.DONE
        self._count(session, usage.CONNECT_SUCCESS)

    async def _refuse_other_identity(self, session: ConnectSession, state: dict[str, Any]) -> None:
        """A reconnect as another bank user: nothing of it is stored, the login keeps its
        status, and the consent just given to the bank for it is withdrawn (best effort)."""
        await self.hub.engine.revoke(session.service, state)
        await self._fail(
            session,
            OtherIdentity(
                f"The user logged in to {session.service.name} as a different bank user than "
                "the one this connection belongs to; nothing was changed."
            ),
            ErrorCode.CREDENTIAL_INVALID,
            record=False,
        )


class OtherIdentity(InvalidCredentials):
    """A reconnect logged in as another bank user than the login's."""


def wrong_answer(locale: str, bank: str, *, tried: int, limit: int, login: bool) -> str:
    """The notice after a wrong password or code, under the limit: what was wrong, how many
    tries are left, and what happens at the limit. The bank's own words stay in the
    partner's callback: they are in the bank's language and often written for its staff."""
    t = i18n.gettext_for(locale)
    left = limit - tried
    what = (
        t.gettext("{bank} did not accept the username or password.")
        if login
        else t.gettext("{bank} did not accept your answer.")
    )
    remaining = t.ngettext(
        "Check it and try again: you have {left} attempt left. After {limit} wrong attempts "
        "this connection stops, for your security.",
        "Check it and try again: you have {left} attempts left. After {limit} wrong attempts "
        "this connection stops, for your security.",
        left,
    )
    return f"{what.format(bank=bank)} {remaining.format(left=left, limit=limit)}"


def in_plain_words(
    failure: ConnectorFailure,
    bank: str,
    app: str,
    now: datetime,
    locale: str = i18n.DEFAULT,
    *,
    tried: int = 0,
    declined: bool = False,
) -> str:
    """What the failure page tells the user, in their language, in the second person, with
    what to do next; the bank's own words stay in the partner's callback. ``tried``: the
    wrong answers that ended the connection (the attempt limit); ``declined``: the user refused
    the access on the bank's own page."""
    t = i18n.gettext_for(locale)
    _ = t.gettext
    if declined:
        said = _(
            "You declined the consent at {bank}, so nothing was shared with {app}. To connect "
            "after all, start again from {app}."
        )
    elif isinstance(failure, OtherIdentity):
        said = _(
            "You logged in to {bank} as a different user than the one this connection belongs "
            "to. Nothing was changed. To connect that user's accounts, start a new connection "
            "in {app}."
        )
    elif tried and isinstance(failure, InvalidCredentials):
        said = t.ngettext(
            "You have entered a wrong username or password {tried} time. For your security "
            "this connection was stopped. Check your login details with {bank}, then start "
            "again from {app}.",
            "You have entered a wrong username or password {tried} times. For your security "
            "this connection was stopped. Check your login details with {bank}, then start "
            "again from {app}.",
            tried,
        )
    elif tried:
        said = t.ngettext(
            "You have given a wrong answer {tried} time. For your security this connection "
            "was stopped. Start again from {app}, or contact {bank} if the codes do not "
            "arrive or are not accepted.",
            "You have given a wrong answer {tried} times. For your security this connection "
            "was stopped. Start again from {app}, or contact {bank} if the codes do not "
            "arrive or are not accepted.",
            tried,
        )
    elif isinstance(failure, RateLimited):
        if failure.retry_after is None:
            said = _(
                "{bank} is getting too many requests for your accounts right now and asked us "
                "to wait. Nothing was shared; please try again later from {app}."
            )
        else:
            at = now + timedelta(seconds=failure.retry_after)
            said = _(
                "{bank} is getting too many requests for your accounts right now and asked us "
                "to wait until {time} UTC on {day}. Nothing was shared; please try again then "
                "from {app}."
            ).format(
                bank="{bank}",
                app="{app}",
                # 24-hour in every language: unambiguous beside "UTC"
                time=format_time(at, "HH:mm", locale=locale),
                day=i18n.day(at.date(), locale),
            )
    elif isinstance(failure, ConsentExpired):
        said = _(
            "{bank} says your permission to share your account data has ended or was "
            "withdrawn at the bank. Start again from {app} to give it anew."
        )
    elif isinstance(failure, AccountLocked):
        said = _(
            "{bank} has locked your online banking access. Contact {bank} to unlock it, then "
            "start again from {app}."
        )
    elif isinstance(failure, PasswordExpired):
        said = _(
            "Your {bank} password has expired. Change it in {bank}'s online banking, then "
            "start again from {app}."
        )
    elif isinstance(failure, InvalidCredentials):
        said = _(
            "{bank} did not accept your login. Check your details with {bank}, then start "
            "again from {app}."
        )
    elif isinstance(failure, InteractionRejected):
        said = _(
            "{bank} did not accept your answer, so this connection was stopped. Start again "
            "from {app}."
        )
    elif isinstance(failure, ProviderUnavailable):
        said = _(
            "{bank} cannot be reached right now. Nothing was shared. Please try again in a few "
            "minutes from {app}."
        )
    else:
        said = _(
            "{bank} could not complete the connection. Nothing was shared. Please try again "
            "later from {app}; if this keeps happening, contact {app}."
        )
    return said.format(bank=bank, app=app, tried=tried)
