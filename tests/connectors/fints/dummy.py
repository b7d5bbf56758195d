"""python-fints' own dummy FinTS server, loaded from its PyPI sdist (fetched, never copied here).

The sdist lands in ``.cache/fints-sdist`` (gitignored). Its ``tests/conftest.py`` defines the
server as a pytest fixture; :func:`dummy_server` runs that fixture's generator by hand, so the
server's code and data are exactly what python-fints ships. Optional wrappers extend its handler
for bank behaviour it lacks (a TAN on dialog initialisation, several TAN mechanisms).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import inspect
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import fints.parser
from fints.formals import (
    KTI1,
    Account3,
    Amount1,
    Balance2,
    BankIdentifier,
    BookedCamtStatements1,
    CreditDebit2,
    SegmentHeader,
    TANMedia5,
    TANMediaClass4,
    TANMediumStatus,
    TANUsageOption,
)
from fints.parser import FinTS3Serializer
from fints.segments.auth import HITAB5
from fints.segments.saldo import HISAL7
from fints.segments.statement import HICAZ1

from tests.support.locks import file_lock

REPO = Path(__file__).resolve().parents[3]
CACHE = REPO / ".cache" / "fints-sdist"
#: the longest a dummy server lives, whatever the test does
LIFETIME_SECONDS = 120.0

#: the PINs the dummy server knows: a good one and one whose access is locked
GOOD_PIN = "1234"
LOCKED_PIN = "3938"
BLZ = "12345678"
USER = "test1"
#: the one SEPA account the dummy serves
IBAN = "DE111234567800000001"
BIC = "GENODE23X42"

Wrapper = Callable[[type, dict[str, Any]], type]


def sdist_root() -> Path:
    """The unpacked sdist of the installed python-fints version, fetched on first use."""
    version = importlib.metadata.version("fints")
    root = CACHE / f"fints-{version}"
    if (root / "tests" / "conftest.py").exists():
        return root
    with file_lock(CACHE.with_name(CACHE.name + ".lock")):  # parallel workers fetch it once
        if not (root / "tests" / "conftest.py").exists():
            _fetch(version, root)
    return root


def _fetch(version: str, root: Path) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        fetched = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"fints=={version}",
                "--no-binary",
                ":all:",
                "--no-deps",
                "-d",
                tmp,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if fetched.returncode != 0:
            raise RuntimeError(f"pip could not fetch the fints {version} sdist:\n{fetched.stderr}")
        archive = next(Path(tmp).glob("fints-*.tar.gz"))
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(f"fints-{version}/tests/")]
            tar.extractall(tmp, members=members, filter="data")
        Path(tmp, f"fints-{version}").replace(root)


@functools.cache
def _conftest() -> ModuleType:
    path = sdist_root() / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("fints_sdist_conftest", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    robust = fints.parser.robust_mode
    try:
        with warnings.catch_warnings():
            # Its source has an invalid escape ("\\u00e4" in a bytes literal): not ours to fix.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            spec.loader.exec_module(module)
    finally:
        # The sdist's conftest switches the parser to strict mode for the whole process;
        # bankhub runs python-fints with its default, so put that back.
        fints.parser.robust_mode = robust
    return module


@dataclass
class DummyServer:
    url: str
    dialogs: dict[str, Any]
    server: Any


@contextmanager
def dummy_server(
    wrapper: Wrapper | None = None, lifetime: float = LIFETIME_SECONDS
) -> Iterator[DummyServer]:
    """Start the sdist's server on 127.0.0.1 (a free port); it stops on exit or after
    ``lifetime`` seconds, whatever the test does."""
    factory = inspect.unwrap(_conftest().fints_server)
    fixture = factory()
    url = next(fixture)
    frame = fixture.gi_frame.f_locals
    server, dialogs = frame["server"], frame["dialogs"]
    if wrapper is not None:
        server.RequestHandlerClass = wrapper(server.RequestHandlerClass, dialogs)
    server.RequestHandlerClass.log_message = lambda *args: None
    watchdog = threading.Timer(lifetime, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield DummyServer(url=url, dialogs=dialogs, server=server)
    finally:
        watchdog.cancel()
        next(fixture, None)


_INIT_TAN = re.compile(rb"'HKTAN:(\d+):(\d+)\+4")
_ALLOWED = b"3920::Zugelassene TAN-Verfahren fur den Benutzer:942"


def _binary(data: bytes | None) -> bytes:
    """An HITAN field of binary data (``@length@bytes``), or nothing."""
    return b"" if data is None else b"+@%d@" % len(data) + data


def login_tan(
    tan: str = "123456",
    challenge: str = "Geben Sie TAN {tan} an",
    mechanisms: str | None = None,
    hhduc: bytes | None = None,
    only_if: bytes | None = None,
) -> Wrapper:
    """Ask for a TAN on every dialog initialisation that offers one (PSD2 strong login).

    The challenge is issued here; the TAN is then checked by the dummy server's own HKTAN
    process-2 code (its ``pending`` task table), as for its transfers. ``mechanisms`` (like
    ``"942:962"``) widens the TAN methods the server allows for the user; ``hhduc`` fills the
    challenge's binary HHD_UC field (a photoTAN image container, an HHD 1.4 code);
    ``only_if`` asks only when the message holds these bytes (a TAN medium's name).
    """

    def wrap(handler: type, dialogs: dict[str, Any]) -> type:
        # the handler class is python-fints' sdist's, loaded at run time and untyped
        class LoginTanHandler(handler):  # type: ignore[misc]
            def make_answer(self, dialog_id: str, message: bytes) -> bytes:
                answer: bytes = super().make_answer(dialog_id, message)
                if mechanisms is not None:
                    answer = answer.replace(_ALLOWED, _ALLOWED[:-3] + mechanisms.encode())
                found = _INIT_TAN.search(message)
                asks = only_if is None or only_if in message
                if found and asks and b"'HKIDN:" in message and b"0020::" in answer:
                    segment, version = found.group(1).decode(), found.group(2).decode()
                    reference = uuid.uuid4().hex
                    dialogs[dialog_id].setdefault("pending", {})[reference] = {
                        "seg": segment,
                        "pain": "",
                        "memo": "login",
                        "recv": USER,
                        "amount": "0",
                        "tan": tan,
                    }
                    text = challenge.format(tan=tan)
                    answer += (
                        (
                            f"HIRMS::2:{segment}+0030::Auftragsfreigabe erforderlich'"
                            f"HITAN::{version}:{segment}+4++{reference}+{text}"
                        ).encode("iso-8859-1")
                        + _binary(hhduc)
                        + b"'"
                    )
                    dialogs[dialog_id].setdefault("tan_inits", []).append(message)
                return answer

        return LoginTanHandler

    return wrap


@dataclass
class Approval:
    """The user's banking app, for a decoupled (pushTAN) login: ``approved`` once they did."""

    approved: bool = False
    polls: int = 0


_STATUS = re.compile(rb"'HKTAN:(\d+):(\d+)\+S\+\+\+\+([^+']+)")


def decoupled_login(
    approval: Approval, text: str = "Bitte bestätigen Sie den Zugriff in Ihrer App"
) -> Wrapper:
    """A login approved in the bank's app (decoupled SCA, return code 3955), polled with
    HKTAN process S: 3956 (still waiting) until ``approval.approved``, then 0020."""

    def wrap(handler: type, dialogs: dict[str, Any]) -> type:
        class DecoupledHandler(handler):  # type: ignore[misc]
            def make_answer(self, dialog_id: str, message: bytes) -> bytes:
                answer: bytes = super().make_answer(dialog_id, message)
                found = _INIT_TAN.search(message)
                if found and b"'HKIDN:" in message and b"0020::" in answer:
                    segment, version = found.group(1).decode(), found.group(2).decode()
                    reference = uuid.uuid4().hex
                    dialogs[dialog_id].setdefault("decoupled", set()).add(reference)
                    answer += (
                        f"HIRMS::2:{segment}+3955::Sicherheitsfreigabe erfolgt über anderen Kanal'"
                        f"HITAN::{version}:{segment}+4++{reference}+{text}'"
                    ).encode("iso-8859-1")
                status = _STATUS.search(message)
                if status and status.group(3).decode() in dialogs[dialog_id].get("decoupled", ()):
                    segment, version = status.group(1).decode(), status.group(2).decode()
                    approval.polls += 1
                    code = (
                        "0020::Auftrag ausgeführt"
                        if approval.approved
                        else "3956::Starke Kundenauthentifizierung noch ausstehend"
                    )
                    answer += (
                        f"HIRMS::2:{segment}+{code}'"
                        f"HITAN::{version}:{segment}+S++{status.group(3).decode()}'"
                    ).encode("iso-8859-1")
                return answer

        return DecoupledHandler

    return wrap


def institute_message(subject: str, text: str) -> Wrapper:
    """A bank that tells its users something on every dialog initialisation (HIKIM)."""

    def wrap(handler: type, dialogs: dict[str, Any]) -> type:
        class MessageHandler(handler):  # type: ignore[misc]
            def make_answer(self, dialog_id: str, message: bytes) -> bytes:
                answer: bytes = super().make_answer(dialog_id, message)
                if b"'HKIDN:" in message and b"0020::" in answer:
                    escaped = [re.sub(r"([+:'?@])", r"?\1", t) for t in (subject, text)]
                    answer += f"HIKIM::2+{escaped[0]}+{escaped[1]}'".encode("iso-8859-1")
                return answer

        return MessageHandler

    return wrap


def chain(*wrappers: Wrapper) -> Wrapper:
    """Several behaviours at once: the first wrapper is the innermost."""

    def wrap(handler: type, dialogs: dict[str, Any]) -> type:
        for wrapper in wrappers:
            handler = wrapper(handler, dialogs)
        return handler

    return wrap


CAMT052 = "urn:iso:std:iso:20022:tech:xsd:camt.052.001.08"
_HIVISS = b"'HIVISS:56:1:4+1+1+1+1;;;;'"
_HICAZS = b"HICAZS:90:1:4+1+1+1+450:N:N:urn?:iso?:std?:iso?:20022?:tech?:xsd?:camt.052.001.08'"
_HKCAZ = re.compile(rb"'HKCAZ:(\d+):1\+")
_HKSAL = re.compile(rb"'HKSAL:(\d+):7\+")


def _answer(segment: Any, reference: str) -> bytes:
    """One answer segment, rendered by python-fints' own serializer."""
    segment.header = SegmentHeader(segment.TYPE, 0, segment.VERSION, int(reference))
    rendered: bytes = FinTS3Serializer().serialize_message(segment)
    return rendered


def camt_bank(booked: list[bytes], pending: bytes | None, balance: Decimal) -> Wrapper:
    """A bank that offers camt.052.001.08 statements (HICAZS, HKCAZ) and balances (HKSAL 7).

    HKCAZ is answered with ``booked`` (each a camt.052 document) and ``pending``; HKSAL with
    ``balance`` in EUR. The answers are python-fints' own segments (HICAZ1, HISAL7).
    """

    def wrap(handler: type, dialogs: dict[str, Any]) -> type:
        class CamtHandler(handler):  # type: ignore[misc]
            def make_answer(self, dialog_id: str, message: bytes) -> bytes:
                answer: bytes = super().make_answer(dialog_id, message)
                answer = answer.replace(_HIVISS, _HIVISS + _HICAZS)
                account = KTI1(iban=IBAN, bic=BIC)
                if found := _HKCAZ.search(message):
                    answer += f"HIRMS::2:{found.group(1).decode()}+0020::Umsätze'".encode(
                        "iso-8859-1"
                    ) + _answer(
                        HICAZ1(
                            account=account,
                            camt_descriptor=CAMT052,
                            statement_booked=BookedCamtStatements1(camt_statements=booked),
                            statement_pending=pending,
                        ),
                        found.group(1).decode(),
                    )
                if found := _HKSAL.search(message):
                    answer += _answer(
                        HISAL7(
                            account=account,
                            account_product="Girokonto",
                            currency="EUR",
                            balance_booked=Balance2(
                                credit_debit=CreditDebit2.CREDIT,
                                amount=Amount1(amount=balance, currency="EUR"),
                                date=date(2026, 11, 20),
                            ),
                        ),
                        found.group(1).decode(),
                    )
                return answer

        return CamtHandler

    return wrap


#: the mobile TAN method's parameters, once saying one medium may be named and once that the
#: user has two and must name one (HITANS 5: "Bezeichnung des TAN-Mediums erforderlich" 2)
_ONE_MEDIUM = b"SMS:3:1:J:1:0:N:0:2:N:J:00:1:1:"
_NAMED_MEDIUM = b"SMS:3:1:J:1:0:N:0:2:N:J:00:2:2:"
_HITABS = b"HITABS:91:5:4+1+1+1'"
_HKTAB = re.compile(rb"'HKTAB:(\d+):5\+")


def tan_media(*media: tuple[str, str]) -> Wrapper:
    """A bank whose mobile TAN needs the name of one of the user's TAN media (name, masked
    phone number), listed by HKTAB (HITAB 5, rendered by python-fints). Listing the media
    needs no TAN: a dialog whose HKTAN names no medium opens without one."""

    def wrap(handler: type, dialogs: dict[str, Any]) -> type:
        class MediaHandler(handler):  # type: ignore[misc]
            def make_answer(self, dialog_id: str, message: bytes) -> bytes:
                answer: bytes = super().make_answer(dialog_id, message)
                answer = answer.replace(_ONE_MEDIUM, _NAMED_MEDIUM)
                answer = answer.replace(_HIVISS, _HIVISS + _HITABS)
                if found := _HKTAB.search(message):
                    dialogs[dialog_id]["listed_media"] = True
                    answer += f"HIRMS::2:{found.group(1).decode()}+0020::TAN-Medien'".encode(
                        "iso-8859-1"
                    ) + _answer(
                        HITAB5(
                            tan_usage_option=TANUsageOption.EXACTLY_ONE,
                            tan_media_list=[
                                TANMedia5(
                                    tan_medium_class=TANMediaClass4.MOBILE,
                                    status=TANMediumStatus.ACTIVE,
                                    # python-fints' serializer writes an empty nested group
                                    # as one field, which its parser then misreads: fill it
                                    account=Account3(
                                        account_number="0000000001",
                                        subaccount_number="",
                                        bank_identifier=BankIdentifier("280", BLZ),
                                    ),
                                    tan_medium_name=name,
                                    mobile_number_masked=masked,
                                )
                                for name, masked in media
                            ],
                        ),
                        found.group(1).decode(),
                    )
                return answer

        return MediaHandler

    return wrap
