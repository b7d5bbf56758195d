"""The FinTS connector: German banks over FinTS 3.0 PIN/TAN, with python-fints."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable, Mapping
from datetime import date
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from bankhub.connectors.base import (
    AccountRecord,
    Answer,
    AuthFlow,
    Challenge,
    ChallengeKind,
    Choice,
    ConnectorContext,
    ConnectorInfo,
    CredentialField,
    FieldKind,
    Interaction,
    InteractionRejected,
    InvalidCredentials,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    ProviderUnavailable,
    SessionExpired,
    TransactionRecord,
)
from bankhub.connectors.fints import bank, state
from bankhub.connectors.fints import challenge as shows
from bankhub.connectors.fints.params import BankParams, bank_params

T = TypeVar("T")
#: refused TANs after which the login gives up (the bank locks the access after a few more)
MAX_TAN_ATTEMPTS = 3
_TAGS = re.compile(r"<[^>]*>")
_BREAKS = re.compile(r"<\s*(br|/p|/li)\s*/?>", re.IGNORECASE)


class Step(StrEnum):
    NONE = "none"
    CHOOSE = "choose"
    MEDIUM = "medium"
    TAN = "tan"
    READY = "ready"


class TanChallenge(NeedsCode):
    """The bank's TAN challenge: its text, plus what it shows besides (``challenge``: a
    photoTAN/QR image, or a chipTAN flicker code with its manual fallback).

    ``hhduc`` is the HHD/UC data string for a chipTAN generator (ASCII); nothing here is
    secret, and none of it is stored: it lives as long as the connect session's step.
    """

    def __init__(
        self, prompt: str, *, hhduc: str | None = None, challenge: Challenge | None = None
    ) -> None:
        super().__init__(prompt, secret=True, field_label="TAN", challenge=challenge)
        self.hhduc = hhduc


def _plain(text: str) -> str:
    """The challenge as plain text (some banks send a little HTML)."""
    text = _BREAKS.sub("\n", text)
    return html.unescape(_TAGS.sub("", text)).strip()


def _interaction(challenge: Any, refused: str = "") -> Interaction:
    text = _plain(str(challenge.challenge or ""))
    if challenge.decoupled:
        prompt = text or "Approve the login in your banking app, then continue."
        return NeedsDecoupledApproval(refused + prompt)
    hhduc = challenge.challenge_hhduc
    safe_hhduc = hhduc if isinstance(hhduc, str) and hhduc.isascii() else None
    shown = shows.image(challenge.challenge_matrix) or shows.flicker(safe_hhduc)
    if shown is not None and shown.kind == ChallengeKind.IMAGE:
        default = "Scan the image with your banking app and enter the TAN it shows."
    elif shown is not None:
        default = "Hold your chipTAN reader against the flicker code and enter the TAN it shows."
    else:
        default = "Enter the TAN the bank sent you."
    return TanChallenge(refused + (text or default), hhduc=safe_hhduc, challenge=shown)


class FinTSConnector:
    """A FinTS 3.0 PIN/TAN login. The PIN stays in memory for the life of this object only."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id="fints",
        version="1.0.0",
        credential_fields=(
            CredentialField(
                "user_id", "Login name", help="Your online-banking login name or user id"
            ),
            CredentialField("pin", "PIN", kind=FieldKind.SECRET),
        ),
        auth_flows=(AuthFlow.CREDENTIALS,),
        unattended_refreshes_per_day=4,
        history_days=365,
        consent_days=90,
        description="German banks over FinTS 3.0 (HBCI PIN/TAN)",
    )

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        self._lock = asyncio.Lock()
        self._session: bank.BankSession | None = None
        self._params: BankParams | None = None
        self._step = Step.NONE
        self._mechanisms: dict[str, str] = {}
        self._refused = 0
        #: the login name the bank accepted with the PIN (the identity, not a secret)
        self._user_id: str | None = None
        #: the institute messages of the last session, kept once its dialog is closed
        self._heard: list[str] = []
        #: the TAN method chosen while the user picks a TAN medium for it, and the media
        self._mechanism: str | None = None
        self._media: list[tuple[str, str]] = []

    # --- running blocking calls -----------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        params = self._params
        limit = params.operation_timeout_seconds if params else 60.0
        async with self._lock:
            try:
                async with asyncio.timeout(limit):
                    return await asyncio.to_thread(bank.call, fn, *args)
            except TimeoutError:
                self._session, self._step = None, Step.NONE
                raise ProviderUnavailable(
                    f"The bank's FinTS server did not answer within {limit:g} seconds"
                ) from None

    def _save(self) -> None:
        if self._session is not None:
            state.save(self.context.state, self._session.saved())

    # --- login ----------------------------------------------------------------------------

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        await self.close()
        user_id = (credentials.get("user_id") or "").strip()
        pin = credentials.get("pin") or ""
        if not user_id or not pin:
            raise InvalidCredentials("Enter both the login name and the PIN")
        self._params = bank_params(self.context.institution, self.context.options)
        saved = state.load(self.context.state)
        session = bank.BankSession(self._params, user_id, pin, saved)
        self._mechanisms = await self._run(session.mechanisms)
        self._session, self._refused, self._user_id = session, 0, user_id
        self._save()
        if saved.tan_mechanism in self._mechanisms:
            await self._open(saved.tan_mechanism)
        elif len(self._mechanisms) <= 1:
            await self._open(next(iter(self._mechanisms), None))
        else:
            self._step = Step.CHOOSE
            raise self._told(
                NeedsChoice(
                    "Choose how you want to receive TANs",
                    [Choice(id=key, label=label) for key, label in self._mechanisms.items()],
                )
            )

    async def _open(self, mechanism: str | None, *, medium_chosen: bool = False) -> None:
        if self._session is None:
            raise RuntimeError("the FinTS session is opened by authenticate")
        if not medium_chosen:
            media = await self._run(self._session.media, mechanism)
            if len(media) > 1:
                self._step, self._mechanism, self._media = Step.MEDIUM, mechanism, media
                raise self._told(
                    NeedsChoice(
                        "Choose the device that should receive your TANs",
                        [Choice(id=name, label=label) for name, label in media],
                    )
                )
            if media:
                self._session.choose_medium(media[0][0])
        challenge = await self._run(self._session.open, mechanism)
        self._save()
        self._settle(challenge)

    def _settle(self, challenge: Any, refused: str = "") -> None:
        if challenge is None:
            self._step = Step.READY
            self._save()
            return
        self._step = Step.TAN
        raise self._told(_interaction(challenge, refused))

    def _told(self, interaction: Interaction) -> Interaction:
        """The step, with what the bank has said to the user so far (its institute messages)."""
        interaction.notices = tuple(self.notices())
        return interaction

    def notices(self) -> list[str]:
        """The bank's institute messages of this session, as plain text."""
        if self._session is not None:
            self._heard = list(self._session.messages)
        return [text for text in (_plain(m) for m in self._heard) if text]

    async def resume(self, answer: Answer) -> None:
        session = self._session
        if session is None or self._step not in (Step.CHOOSE, Step.MEDIUM, Step.TAN):
            raise InteractionRejected("Nothing is waiting for an answer; log in again")
        if self._step == Step.CHOOSE:
            if answer.kind != "choice" or answer.value not in self._mechanisms:
                raise InteractionRejected("Choose one of the TAN methods the bank offers")
            await self._open(answer.value)
            return
        if self._step == Step.MEDIUM:
            if answer.kind != "choice" or answer.value not in {n for n, _ in self._media}:
                raise InteractionRejected("Choose one of your TAN devices the bank lists")
            session.choose_medium(answer.value)
            await self._open(self._mechanism, medium_chosen=True)
            return
        decoupled = bool(getattr(session.challenge, "decoupled", False))
        if decoupled and answer.kind != "poll":
            raise InteractionRejected("Approve the login in your banking app, then continue")
        tan = answer.value.strip()
        if not decoupled and (answer.kind != "code" or not tan):
            raise InteractionRejected("Enter the TAN")
        try:
            further = await self._run(session.send_tan, tan)
        except bank.TanRefused as refused:
            self._refused += 1
            if self._refused >= MAX_TAN_ATTEMPTS:
                await self.close()
                raise InteractionRejected(refused.message) from None
            challenge = await self._run(session.restart)
            self._settle(challenge, f"{refused.message}. A new challenge follows.\n")
            return
        self._settle(further)

    def identity(self) -> str | None:
        """The login name the bank accepted (the bank's key for the user at this BLZ), compared
        ignoring case so that a reconnect typed in other capitals is not taken for another
        person."""
        return f"user:{self._user_id.casefold()}" if self._user_id else None

    async def open_session(self) -> None:
        """FinTS needs the PIN for every dialog, so an unattended refresh cannot reopen one."""
        await self.close()
        raise SessionExpired(
            "FinTS banks need the PIN for every session: log in again "
            "(or keep the PIN in the app's credential vault)"
        )

    async def close(self) -> None:
        """End the standing dialog at the bank and forget the PIN."""
        session, self._session, self._step = self._session, None, Step.NONE
        if session is not None:
            self._heard = list(session.messages)
            await self._run(session.close)

    # --- reads ----------------------------------------------------------------------------

    def _ready(self) -> bank.BankSession:
        if self._session is None or self._step != Step.READY:
            raise SessionExpired("There is no open FinTS dialog; log in again")
        return self._session

    async def fetch_accounts(self) -> list[AccountRecord]:
        return await self._run(self._ready().accounts)

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        return await self._run(self._ready().transactions, account, since, until)
