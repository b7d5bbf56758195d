"""The connect flow: consent → credentials → the bank's interactive steps → first fetch → callback.

State lives in process memory, keyed by a random id held in the user's cookie: the connector
instance (which may hold credentials while it logs in) must never be written anywhere, so a
connect session is served by the process that started it (scale-out deployments keep connect
traffic sticky). Sessions end after 5 idle minutes or 5 wrong answers (PSD2 RTS art. 4).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from bankhub.api.errors import ErrorCode
from bankhub.catalogue import Service
from bankhub.clock import as_utc
from bankhub.connectors.base import (
    Answer,
    AuthFlow,
    ConnectorFailure,
    ConnectorInfo,
    Interaction,
    InteractionRejected,
    InvalidCredentials,
    NeedsDecoupledApproval,
    NeedsRedirect,
)
from bankhub.connectors.statement import StatementConnector
from bankhub.db import tenancy
from bankhub.hub import Hub
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners import branding, modes
from bankhub.partners.models import App
from bankhub.security.secrets import new_uuid_shaped_secret
from bankhub.statements import ParsedStatement
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


#: what the consent page asks the user to share
CONSENT_SCOPES = ("accounts", "balances", "transactions")
#: the longest consent bankhub records, whatever a bank offers (PSD2 RTS art. 10: 180 days)
MAX_CONSENT = timedelta(days=180)


def grant_consent(login: Login, info: ConnectorInfo, now: datetime) -> None:
    """Record what the user agreed to on the connect page, and until when."""
    login.consent_granted_at = now
    login.consent_scopes = list(CONSENT_SCOPES)
    login.consent_history_days = info.history_days
    offered = min(timedelta(days=info.consent_days), MAX_CONSENT)
    bank = as_utc(login.consent_expires_at) if login.consent_expires_at else now + offered
    login.consent_expires_at = min(bank, now + offered)


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
    step: Step = Step.CONSENT
    attempts: int = 0
    notice: str | None = None
    run: ConnectorRun | None = None
    interaction: Interaction | None = None
    #: the decoupled prompt has been shown once; later visits of the page poll the bank
    prompt_shown: bool = False
    task: asyncio.Task[None] | None = None
    #: the payload sent to the callback when the flow ends (success, error or cancelled)
    outcome: dict[str, Any] | None = None
    failure_message: str | None = None
    base_state: dict[str, Any] = field(default_factory=dict)
    #: the app opted in to the credential vault: keep the credentials until the login exists
    vault: bool = False
    vault_credentials: dict[str, str] | None = None
    #: the app's connect-page branding (App Templates), read when the session opened
    brand: branding.Brand | None = None

    @property
    def finished(self) -> bool:
        return self.step in (Step.DONE, Step.FAILED)

    def callback(self) -> str:
        return callback_location(self.callback_url, self.outcome or {"status": "error"})


class SessionGone(Exception):
    """The connect session is unknown or idle too long (shown as ``TokenExpire``)."""


class ConnectFlow:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._sessions: dict[str, ConnectSession] = {}

    # --- session lifecycle ----------------------------------------------------------------

    def _sweep(self, now: datetime) -> None:
        idle = self.hub.settings.connect_idle
        for sid in [sid for sid, s in self._sessions.items() if now - s.last_seen > idle]:
            self._drop(sid)

    def _drop(self, sid: str) -> None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        if not session.finished:
            self._count(session, usage.CONNECT_ABANDONED)
        session.vault_credentials = None
        if session.task is not None and not session.task.done():
            session.task.cancel()

    def get(self, sid: str | None) -> ConnectSession:
        now = self.hub.clock()
        self._sweep(now)
        session = self._sessions.get(sid or "")
        if session is None:
            raise SessionGone(sid)
        session.last_seen = now
        # S14: the page's work (and the first fetch it starts) touches this app's rows only
        tenancy.choose(session.app_id)
        return session

    def end(self, session: ConnectSession) -> None:
        self._drop(session.id)

    def _count(self, session: ConnectSession, outcome: str) -> None:
        """Usage counts (docs/usage.md): how each connect session ended, once."""
        self.hub.usage.connect(
            self.hub.clock(),
            session.app_id,
            outcome,
            reconnect=session.reconnect_login_id is not None,
        )

    async def open(self, token_id: str) -> ConnectSession:
        """Claim the single-use token and start a session (raises ``TokenUnusable``)."""
        hub = self.hub
        # The token names the app (claim_token chooses it), whatever session the browser had.
        tenancy.choose(None)
        async with hub.db.transaction() as db:
            token = await logins.claim_token(db, hub.clock, token_id)
            app = await db.get(App, token.app_id)
            service = hub.catalogue.get(token.service_id)
            if service is None or app is None:
                raise logins.TokenUnusable(token_id)
            # a token made before the app's mode changed: refused, and the token stays unused
            modes.require_allowed(app, service)
            base_state: dict[str, Any] = {}
            if token.login_id is not None:
                login = await db.get(Login, token.login_id)
                base_state = hub.engine.state_of(login) if login else {}
            brand = branding.brand_of(app, await branding.template_of(db, app.id))
        info = hub.registry.info(service.connector)
        session = ConnectSession(
            id=secrets.token_urlsafe(32),
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
            base_state=base_state,
            vault=app.credential_vault,
            brand=brand,
        )
        self._sessions[session.id] = session
        return session

    # --- steps ----------------------------------------------------------------------------

    def agree(self, session: ConnectSession) -> None:
        if session.step == Step.CONSENT:
            session.step = Step.CREDENTIALS

    def cancel(self, session: ConnectSession) -> None:
        session.vault_credentials = None
        if not session.finished:
            session.outcome = {"status": "cancelled"}
            session.step = Step.DONE
            self._count(session, usage.CONNECT_CANCELLED)

    async def submit_credentials(
        self,
        session: ConnectSession,
        credentials: dict[str, str],
        public_url: str,
        client_ip: str | None = None,
    ) -> None:
        if session.step != Step.CREDENTIALS:
            return
        run = self.hub.engine.build(
            session.service,
            session.base_state,
            return_url=f"{public_url}/v2/connect/return",
            public_url=public_url,
            psu_ip_address=client_ip,
        )
        session.run = run
        if session.vault:
            session.vault_credentials = dict(credentials)
        await self._drive(session, run.connector.authenticate(credentials))

    async def submit_statement(
        self, session: ConnectSession, parsed: ParsedStatement, public_url: str
    ) -> None:
        """A statement upload, parsed by the page: the file is the login, then the first fetch."""
        if session.step != Step.CREDENTIALS:
            return
        run = self.hub.engine.build(session.service, session.base_state, public_url=public_url)
        if not isinstance(run.connector, StatementConnector):
            return
        run.connector.load(parsed)
        session.run = run
        await self._drive(session, run.connector.open_file())

    async def answer(self, session: ConnectSession, answer: Answer) -> None:
        if session.step != Step.INTERACTION or session.run is None:
            return
        await self._drive(session, session.run.connector.resume(answer))

    async def poll(self, session: ConnectSession) -> None:
        """Ask the bank whether the user approved; the first visit only shows the bank's prompt."""
        if not isinstance(session.interaction, NeedsDecoupledApproval):
            return
        if not session.prompt_shown:
            session.prompt_shown = True
            return
        await self.answer(session, Answer.poll())

    async def _drive(self, session: ConnectSession, call: Any) -> None:
        """Run one connector call and move the session to wherever its outcome leads."""
        session.notice = None
        try:
            await self.hub.engine.guarded(call)
        except Interaction as interaction:
            if type(interaction) is not type(session.interaction):
                session.prompt_shown = False
            session.interaction = interaction
            session.step = Step.INTERACTION
            return
        except (InvalidCredentials, InteractionRejected) as failure:
            if isinstance(session.interaction, NeedsRedirect):
                # The user refused the consent on the bank's own page: they chose not to connect.
                await self._fail(session, failure, None, cancelled=True)
                return
            session.attempts += 1
            if session.attempts >= self.hub.settings.connect_max_attempts:
                await self._fail(session, failure, ErrorCode.CREDENTIAL_INVALID)
            else:
                left = self.hub.settings.connect_max_attempts - session.attempts
                session.notice = (
                    f"{sentence(failure.message)} "
                    f"You have {left} attempt{'s' if left != 1 else ''} left."
                )
            return
        except ConnectorFailure as failure:
            await self._fail(session, failure, None)
            return
        session.interaction = None
        session.step = Step.PROGRESS
        session.task = asyncio.create_task(self._first_fetch(session))

    async def _fail(
        self,
        session: ConnectSession,
        failure: ConnectorFailure,
        code: ErrorCode | None,
        *,
        cancelled: bool = False,
    ) -> None:
        unavailable = failure.status in ("provider_unavailable", "rate_limited")
        error = (
            str(code)
            if code
            else (str(ErrorCode.CONNECT_ERROR) if unavailable else f"login_{failure.status}")
        )
        if cancelled:
            session.outcome = {"status": "cancelled", "message": failure.message}
        else:
            session.outcome = {"status": "error", "error": error, "message": failure.message}
        session.failure_message = failure.message
        session.vault_credentials = None
        session.step = Step.FAILED
        self._count(session, usage.CONNECT_CANCELLED if cancelled else usage.CONNECT_FAILED)
        session.run = None
        if session.reconnect_login_id is not None and not cancelled:
            hub = self.hub
            async with hub.db.transaction() as db:
                login = await db.get(Login, session.reconnect_login_id)
                if login is not None:
                    await hub.engine.record_failure(db, login, failure)

    async def _first_fetch(self, session: ConnectSession) -> None:
        hub = self.hub
        run = session.run
        assert run is not None  # noqa: S101 - set before the task starts  # nosec B101
        try:
            # A file holds what it holds: no fixed history window for a statement upload.
            since = (
                None
                if AuthFlow.FILE in session.info.auth_flows
                else hub.engine.history_start(session.service)
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
        now = hub.clock()
        async with hub.db.transaction(write=True) as db:
            login: Login | None = None
            if session.reconnect_login_id is not None:
                login = await db.get(Login, session.reconnect_login_id)
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
            await db.flush()
            if session.vault_credentials is not None:
                login.vault_credentials_enc = hub.engine.seal_credentials(
                    login, session.vault_credentials
                )
            session.vault_credentials = None
            await hub.engine.apply(db, login, result)
            grant_consent(login, session.info, now)
            schedule_next(hub.engine, login, session.service, now)
            login_id = login.id
        session.run = None
        session.outcome = {"status": "success", "login_id": login_id, "secret": secret}
        session.step = Step.DONE
        self._count(session, usage.CONNECT_SUCCESS)

    def idle_deadline(self, session: ConnectSession) -> datetime:
        return as_utc(session.last_seen) + self.hub.settings.connect_idle
