"""The blocking side: one python-fints client per login, with its errors mapped to bankhub's.

Everything here talks to the bank synchronously (python-fints uses requests); the connector runs
each call in a worker thread. The PIN lives only in the client object, in memory.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

import requests
from fints.client import FinTS3PinTanClient, NeedTANResponse
from fints.exceptions import (
    FinTSClientPINError,
    FinTSClientTemporaryAuthError,
    FinTSConnectionError,
    FinTSDialogInitError,
    FinTSError,
    FinTSSCARequiredError,
    FinTSUnsupportedOperation,
)
from fints.formals import SupportedMessageTypes
from fints.segments.dialog import HIRMG2, HIRMS2
from fints.segments.statement import HKCAZ1, HKKAZ5, HKKAZ6, HKKAZ7

from bankhub.connectors.base import (
    AccountLocked,
    AccountRecord,
    AccountType,
    ConnectorFailure,
    InteractionRejected,
    InvalidCredentials,
    ProviderUnavailable,
    SessionExpired,
    TransactionRecord,
)
from bankhub.connectors.fints import records
from bankhub.connectors.fints.params import PRODUCT_VERSION, BankParams
from bankhub.connectors.fints.state import SavedState

T = TypeVar("T")
#: python-fints' "one-step" pseudo mechanism: PIN only, no TAN
ONE_STEP = "999"
#: institute messages kept per session, and the length of one (subject and FinTS' 2048)
MAX_MESSAGES = 10
MAX_MESSAGE = 2100
#: the camt formats of HICAZS bankhub reads (camt.052 versions 02 to 08: reports, which carry
#: booked and pending entries; HKCAZ answers camt.052)
_READABLE_CAMT = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.052\.001\.0[2-8]$")


class TanRefused(InteractionRejected):
    """The bank refused the TAN."""


def _unreachable(exc: BaseException) -> ProviderUnavailable:
    return ProviderUnavailable(f"The bank's FinTS server cannot be reached ({type(exc).__name__})")


def _unreadable_challenge() -> ProviderUnavailable:
    # python-fints reads an HHD_UC field under 256 bytes as ASCII text: a small image (or any
    # binary) there fails with UnicodeDecodeError before bankhub sees the challenge
    return ProviderUnavailable(
        "The bank sent a TAN challenge that cannot be read (binary data where text belongs)"
    )


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except ConnectorFailure:
        raise
    except FinTSClientPINError:
        raise InvalidCredentials("The bank rejected the user id or the PIN") from None
    except FinTSClientTemporaryAuthError:
        raise AccountLocked(
            "The bank has locked this online-banking access; unlock it with the bank first"
        ) from None
    except FinTSSCARequiredError:
        raise SessionExpired("The bank asks for a new TAN; log in again") from None
    except (FinTSConnectionError, requests.RequestException, OSError) as exc:
        raise _unreachable(exc) from None
    except UnicodeDecodeError:
        raise _unreadable_challenge() from None
    except FinTSDialogInitError as exc:
        cause = exc.__cause__
        if isinstance(cause, FinTSConnectionError | requests.RequestException | OSError):
            raise _unreachable(cause) from None
        if isinstance(cause, UnicodeDecodeError):
            raise _unreadable_challenge() from None
        raise ProviderUnavailable(f"The bank refused to open a FinTS dialog ({cause})") from None
    except FinTSError as exc:
        raise ProviderUnavailable(
            f"The bank's FinTS server answered with an error: {exc}"
        ) from None
    except Exception as exc:  # python-fints reports some bank errors as a plain Exception
        if type(exc) is not Exception:
            raise
        raise ProviderUnavailable(
            f"The bank's FinTS server answered with an error: {exc}"
        ) from None


def call(fn: Callable[..., T], *args: Any) -> T:
    """Run one blocking step with the library's errors translated."""
    with _translated():
        return fn(*args)


def _account_type(code: Any) -> AccountType:
    """FinTS account kinds (Kontoart) come in blocks of ten."""
    if not isinstance(code, int):
        return AccountType.CURRENT
    block = code // 10
    return {
        0: AccountType.CURRENT,
        1: AccountType.SAVINGS,
        2: AccountType.SAVINGS,
        3: AccountType.INVESTMENT,
        4: AccountType.LOAN,
        5: AccountType.CREDIT_CARD,
        6: AccountType.INVESTMENT,
        7: AccountType.SAVINGS,
    }.get(block, AccountType.OTHER)


@dataclass(frozen=True, slots=True)
class _Upd:
    """What the user parameter data (HIUPD) says about one account."""

    name: str | None
    holder: str | None
    currency: str | None
    type: AccountType


class BankSession:
    """One login at one bank: TAN mechanism, the standing dialog, and the reads."""

    def __init__(self, params: BankParams, user_id: str, pin: str, saved: SavedState) -> None:
        self.params = params
        self.client = self._client(user_id, pin, saved)
        #: the TAN method of the last login: a TAN medium chosen then belongs to it
        self._saved_mechanism = saved.tan_mechanism
        session = self.client.connection.session
        session.request = functools.partial(session.request, timeout=params.timeout_seconds)
        self.challenge: Any = None
        self._accounts: dict[str, Any] = {}
        #: the bank's institute messages (HIKIM) of this session, in order, each once
        self.messages: list[str] = []
        process = self.client.process_response_message

        def hear(dialog: Any, message: Any, internal_send: bool = True) -> Any:
            self._hear(message)
            return process(dialog, message, internal_send=internal_send)

        self.client.process_response_message = hear

    def _client(self, user_id: str, pin: str, saved: SavedState) -> Any:
        def build(blob: bytes | None) -> Any:
            return FinTS3PinTanClient(
                self.params.blz,
                user_id,
                pin,
                self.params.url,
                product_id=self.params.product_id,
                product_version=PRODUCT_VERSION,
                system_id=saved.system_id,
                from_data=blob,
            )

        try:
            return build(saved.client)
        except (ValueError, KeyError, TypeError):  # an unreadable blob: start afresh
            return build(None)

    def _hear(self, message: Any) -> None:
        """Keep the bank's institute messages (HIKIM, "Kreditinstitutsmeldung": a subject and
        a text for the bank's users). python-fints has no class for the segment and keeps its
        fields as they came."""
        for segment in message.find_segments("HIKIM"):
            parts = [
                str(part).strip()
                for part in getattr(segment, "_additional_data", ()) or ()
                if isinstance(part, str) and part.strip()
            ]
            text = ": ".join(parts[:2])[:MAX_MESSAGE]
            if text and text not in self.messages and len(self.messages) < MAX_MESSAGES:
                self.messages.append(text)

    # --- login ---------------------------------------------------------------------------

    def mechanisms(self) -> dict[str, str]:
        """Ask the bank which two-step TAN mechanisms the user may use (a dialog without TAN)."""
        self.client.set_tan_mechanism(None)
        self.client.fetch_tan_mechanisms()
        return {
            function: str(getattr(parameter, "name", None) or function)
            for function, parameter in self.client.get_tan_mechanisms().items()
            if function != ONE_STEP and parameter.tan_process == "2"
        }

    def media(self, mechanism: str | None) -> list[tuple[str, str]]:
        """The TAN media (the user's devices: phones, TAN generators) to choose one from, as
        (name, label), when the bank needs the medium's name for ``mechanism`` and none is
        chosen yet; else empty. A medium chosen for another TAN method is forgotten."""
        client = self.client
        if mechanism != self._saved_mechanism:
            client.selected_tan_medium = None
        if not mechanism:
            return []
        client.set_tan_mechanism(mechanism)
        if not client.is_tan_media_required() or client.selected_tan_medium:
            return []
        listed = client.get_tan_media()
        found: list[tuple[str, str]] = []
        for medium in (listed[1] if listed else []) or []:
            name = str(medium.tan_medium_name or "").strip()
            if not name or any(name == known for known, _ in found):
                continue
            masked = str(getattr(medium, "mobile_number_masked", None) or "").strip()
            found.append((name, f"{name} ({masked})" if masked else name))
        return found

    def choose_medium(self, name: str) -> None:
        """Use the TAN medium ``name`` (sent in HKTAN from now on, and kept in the state)."""
        self.client.selected_tan_medium = name

    def open(self, mechanism: str | None) -> Any:
        """Open the standing dialog; returns the bank's TAN challenge, if it sends one."""
        self.client.set_tan_mechanism(mechanism or ONE_STEP)
        self.client.init_tan_response = None
        self.client.__enter__()
        self.challenge = self.client.init_tan_response
        return self.challenge

    def send_tan(self, tan: str) -> Any:
        """Answer the open challenge; returns a further challenge (decoupled: not yet approved)."""
        response = self.client.send_tan(self.challenge, tan)
        if isinstance(response, NeedTANResponse):
            self.challenge = response
            return response
        errors = [
            f"{answer.code} {answer.text}".strip()
            for segment in (*response.find_segments(HIRMG2), *response.find_segments(HIRMS2))
            for answer in segment.responses
            if str(answer.code).startswith("9")
        ]
        if errors:
            raise TanRefused(f"The bank refused the TAN ({'; '.join(errors)})")
        self.challenge = None
        self.client.init_tan_response = None
        return None

    def restart(self) -> Any:
        """End the dialog and open a new one, for a new challenge after a refused TAN."""
        mechanism = self.client.get_current_tan_mechanism()
        self.close()
        return self.open(mechanism)

    def close(self) -> None:
        if self.client._standing_dialog is None:
            return
        try:
            self.client.__exit__(None, None, None)
        except (FinTSError, requests.RequestException, OSError):
            self.client._standing_dialog = None

    def saved(self) -> SavedState:
        blob: bytes = self.client.deconstruct(including_private=False)
        mechanism = self.client.get_current_tan_mechanism()
        return SavedState(
            client=blob,
            system_id=self.client.system_id,
            tan_mechanism=mechanism if mechanism and mechanism != ONE_STEP else None,
        )

    # --- reads ---------------------------------------------------------------------------

    def _upd(self) -> dict[str, _Upd]:
        found: dict[str, _Upd] = {}
        for upd in self.client.upd.find_segments("HIUPD"):
            key = str(upd.iban or upd.account_information.account_number or "")
            owners = [n for n in (upd.name_account_owner_1, upd.name_account_owner_2) if n]
            found[key] = _Upd(
                name=upd.account_product_name or None,
                holder=" ".join(owners) or None,
                currency=upd.account_currency or None,
                type=_account_type(upd.account_type),
            )
        return found

    def accounts(self) -> list[AccountRecord]:
        sepa = self.client.get_sepa_accounts()
        if isinstance(sepa, NeedTANResponse):
            raise SessionExpired("The bank asks for a TAN to list the accounts; log in again")
        upd = self._upd()
        result = []
        self._accounts = {}
        for account in sepa:
            key = (
                account.iban or f"{account.blz}/{account.accountnumber}/{account.subaccount or ''}"
            )
            self._accounts[key] = account
            about = upd.get(account.iban) or upd.get(account.accountnumber)
            balance, currency = self._balance(account, about.currency if about else None)
            ident = account.iban or account.accountnumber or ""
            result.append(
                AccountRecord(
                    bank_id=key,
                    name=(about.name if about else None) or f"Account …{ident[-4:]}",
                    type=about.type if about else AccountType.CURRENT,
                    currency=currency,
                    balance=balance,
                    number=account.accountnumber or None,
                    iban=account.iban or None,
                    holder_name=about.holder if about else None,
                )
            )
        return result

    def _balance(self, account: Any, currency: str | None) -> tuple[Decimal, str]:
        """HKSAL's booked balance; without one, the closing balance of the latest statement."""
        try:
            balance = self.client.get_balance(account)
        except FinTSUnsupportedOperation:
            balance = None
        amount = getattr(balance, "amount", None) if balance is not None else None
        if amount is not None and isinstance(amount.amount, Decimal):
            return amount.amount, str(amount.currency or currency or "EUR").upper()
        statement = self._statement(account, None, None, currency or "EUR")
        if statement.closing_balance is None:
            raise ProviderUnavailable(
                f"The bank reported no balance for account {account.iban or account.accountnumber}"
            )
        return statement.closing_balance, statement.closing_currency or currency or "EUR"

    def _pages(self, factory: Callable[[str], Any], answer_type: str, what: str) -> list[Any]:
        """Send a paged request (HKKAZ, HKCAZ) until the bank sets no further touchdown point.

        The first page carries an empty touchdown point rather than none: FinTS lets a
        segment's trailing empty fields be sent or left out, and servers that read the segment
        by position (python-fints' own test server is one) find the dates only when every
        field is there. A page the bank answers with neither its data segment nor a return
        code for the request is an error, not an empty statement: taking it for "no
        transactions" would lose them.
        """
        client = self.client
        answers: list[Any] = []
        touchdown = ""
        seen: set[str] = set()
        with client._get_dialog() as dialog:
            while True:
                command = factory(touchdown)
                response = client._send_with_possible_retry(
                    dialog, command, lambda _seg, answer: answer
                )
                if isinstance(response, NeedTANResponse):
                    raise SessionExpired(f"The bank asks for a TAN to read {what}; log in again")
                found = list(response.response_segments(command, answer_type))
                codes = list(response.responses(command))
                errors = [f"{c.code} {c.text}".strip() for c in codes if c.code.startswith("9")]
                if errors:
                    raise ProviderUnavailable(
                        f"The bank refused to send {what} ({'; '.join(errors)})"
                    )
                if not found and not codes:
                    raise ProviderUnavailable(f"The bank did not answer the request for {what}")
                answers.extend(found)
                # the touchdown point goes back exactly as the bank wrote it
                following = next(
                    (str(c.parameters[0]) for c in codes if c.code == "3040" and c.parameters), ""
                )
                if not following.strip():
                    return answers
                if following in seen:
                    raise ProviderUnavailable(
                        f"The bank sent the same page of {what} twice (touchdown {following!r})"
                    )
                seen.add(following)
                touchdown = following

    def camt_formats(self) -> list[str]:
        """The camt.052 formats the bank offers (HICAZS) that bankhub's camt reader reads."""
        parameters = self.client.bpd.find_segment_first("HICAZS")
        offered = list(parameters.parameter.supported_camt_formats) if parameters else []
        return [str(f) for f in offered if _READABLE_CAMT.match(str(f))]

    def _statement(
        self, account: Any, since: date | None, until: date | None, currency: str
    ) -> records.Statement:
        """The account's statement: camt (HKCAZ) where the bank offers a camt.052 that
        bankhub reads (structured names, references and bank transaction codes), else
        MT940 (HKKAZ)."""
        if self.camt_formats():
            return self._camt_statement(account, since, until)
        client = self.client
        try:
            hkkaz = client._find_highest_supported_command(HKKAZ5, HKKAZ6, HKKAZ7)
        except FinTSUnsupportedOperation:
            raise ProviderUnavailable(
                "The bank offers neither camt (HKCAZ) nor MT940 (HKKAZ) statements over FinTS"
            ) from None
        kti = hkkaz._fields["account"].type.from_sepa_account(account)

        def segment(touchdown: str) -> Any:
            return hkkaz(
                account=kti,
                all_accounts=False,
                date_start=since,
                date_end=until,
                touchdown_point=touchdown,
            )

        answers = self._pages(segment, "HIKAZ", "the transactions")
        booked = "".join(a.statement_booked.decode("iso-8859-1") for a in answers)
        pending = "".join(
            a.statement_pending.decode("iso-8859-1") for a in answers if a.statement_pending
        )
        return records.statement(booked, pending, currency)

    def _camt_statement(
        self, account: Any, since: date | None, until: date | None
    ) -> records.Statement:
        formats = self.camt_formats()
        try:
            hkcaz = self.client._find_highest_supported_command(HKCAZ1)
        except FinTSUnsupportedOperation:
            raise ProviderUnavailable(
                "The bank lists camt formats but offers no camt statements (HKCAZ)"
            ) from None
        kti = hkcaz._fields["account"].type.from_sepa_account(account)

        def segment(touchdown: str) -> Any:
            return hkcaz(
                account=kti,
                supported_camt_messages=SupportedMessageTypes(formats),
                all_accounts=False,
                date_start=since,
                date_end=until,
                touchdown_point=touchdown,
            )

        answers = self._pages(segment, "HICAZ", "the transactions")
        booked = [
            bytes(document)
            for answer in answers
            if answer.statement_booked is not None
            for document in answer.statement_booked.camt_statements
        ]
        pending = [bytes(a.statement_pending) for a in answers if a.statement_pending]
        return records.camt_statement(booked, pending)

    def transactions(
        self, record: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        key = record.bank_id or ""
        if key not in self._accounts:
            self.accounts()
        account = self._accounts.get(key)
        if account is None:
            raise ProviderUnavailable(f"The bank no longer lists account {record.name}")
        statement = self._statement(account, since, until, record.currency)
        return records.within(statement.rows, since, until)
