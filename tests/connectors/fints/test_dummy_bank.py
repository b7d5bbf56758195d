"""The connector against python-fints' own dummy FinTS server (fetched from the PyPI sdist).

What the dummy serves (tests/conftest.py of the sdist): BLZ 12345678, user test1, PIN 1234
(3938 is a locked access, anything else a wrong PIN); one SEPA account DE111234567800000001 /
GENODE23X42 / account 00001, described in the UPD as "Girokonto" held by "Fullname"; HKKAZ
answers with two MT940 statements (paged with a touchdown) holding +182.34 EUR on 2015-01-01,
+100.03 and +100.00 EUR on 2015-03-01, the last statement closing at 1423.60 EUR. It answers no
HKSAL, so the balance comes from that closing balance. It asks for no TAN on login; the
``login_tan`` wrapper adds that challenge, and the dummy's own HKTAN code checks the answer.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bankhub.connectors.base import (
    AccountLocked,
    AccountType,
    Answer,
    InteractionRejected,
    InvalidCredentials,
    MemoryStateStore,
    NeedsChoice,
    NeedsDecoupledApproval,
    ProviderUnavailable,
    SessionExpired,
    TransactionStatus,
)
from bankhub.connectors.fints import FinTSConnector, TanChallenge
from bankhub.connectors.registry import default_registry
from bankhub.statements import camt

from .conftest import Build
from .dummy import (
    GOOD_PIN,
    LOCKED_PIN,
    USER,
    Approval,
    DummyServer,
    camt_bank,
    chain,
    decoupled_login,
    institute_message,
    login_tan,
    tan_media,
)

IBAN = "DE111234567800000001"
HHD = "CHLGUC  00312908{tan}1012345678900523,42CHLGTEXT0034Geben Sie den Startcode als TAN an"


async def _read(connector: FinTSConnector) -> None:
    accounts = await connector.fetch_accounts()
    assert [(a.bank_id, a.iban, a.number, a.name) for a in accounts] == [
        (IBAN, IBAN, "00001", "Girokonto")
    ]
    account = accounts[0]
    assert account.holder_name == "Fullname"
    assert account.type == AccountType.CURRENT
    assert (account.balance, account.currency) == (Decimal("1423.60"), "EUR")
    assert isinstance(account.balance, Decimal)

    rows = await connector.fetch_transactions(account, None, None)
    assert [(r.booking_date, r.value_date, r.amount, r.currency) for r in rows] == [
        (date(2015, 1, 1), date(2015, 1, 1), Decimal("182.34"), "EUR"),
        (date(2015, 3, 1), date(2015, 3, 1), Decimal("100.03"), "EUR"),
        (date(2015, 3, 1), date(2015, 3, 1), Decimal("100.00"), "EUR"),
    ]
    assert [r.description.split("/")[1][:22] for r in rows] == [
        "Test Ueberweisung 1n W",
        "Test Ueberweisung 2n W",
        "Test Ueberweisung 3n W",
    ]
    assert all(r.description.startswith("Ihre Kontonummer 0000001234/") for r in rows)
    assert {r.merchant for r in rows} == {"Bank"}
    # Every :61: line says NONREF and has no bank reference: no bank id, bankhub fingerprints.
    assert {r.bank_id for r in rows} == {None}
    assert {r.status for r in rows} == {TransactionStatus.BOOKED}
    # read as an MT940 file is (bankhub.statements.mt940): the dummy's ?24 holds "?1011010100",
    # a second ?10 subfield, so the prima nota runs on
    assert rows[0].meta == {
        "transaction_type": "NMSC",
        "gvc": "051",
        "posting_text": "UEBERWEISG",
        "prima_nota": "93111010100",
    }
    assert {r.counterparty_name for r in rows} == {"Bank"}


async def test_logs_in_with_the_pin_and_reads_what_the_dummy_bank_serves(build: Build) -> None:
    store = MemoryStateStore()
    connector = build(store)
    await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    await _read(connector)
    saved = store.load()["fints"]
    assert saved["system_id"].endswith(";00001")  # the dummy mints "<prefix>;00001"
    # The dummy allows one TAN method (942, mobileTAN): chosen without asking.
    assert saved["tan_mechanism"] == "942"
    await connector.close()


@pytest.mark.parametrize("server", [login_tan()], indirect=True)
async def test_the_bank_asks_for_a_tan_on_login(build: Build, server: DummyServer) -> None:
    connector = build(MemoryStateStore())
    with pytest.raises(TanChallenge) as asked:
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    assert asked.value.prompt == "Geben Sie TAN 123456 an"
    assert asked.value.field_label == "TAN"
    assert asked.value.hhduc is None
    with pytest.raises(SessionExpired):
        await connector.fetch_accounts()
    await connector.resume(Answer("code", "123456"))
    await _read(connector)
    await connector.close()


@pytest.mark.parametrize("server", [login_tan(tan="88112345", challenge=HHD)], indirect=True)
async def test_a_chiptan_challenge_carries_its_flicker_data(build: Build) -> None:
    connector = build(MemoryStateStore())
    with pytest.raises(TanChallenge) as asked:
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    assert asked.value.prompt == "Geben Sie den Startcode als TAN an"
    assert asked.value.hhduc == "2908881123451012345678900523,42"
    await connector.resume(Answer("code", "88112345"))
    assert await connector.fetch_accounts()


@pytest.mark.parametrize("server", [login_tan()], indirect=True)
async def test_a_wrong_tan_brings_a_new_challenge_then_gives_up(build: Build) -> None:
    connector = build(MemoryStateStore())
    with pytest.raises(TanChallenge):
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    with pytest.raises(TanChallenge) as again:
        await connector.resume(Answer("code", "999999"))
    assert again.value.prompt.startswith("The bank refused the TAN (9941 TAN ungültig)")
    assert again.value.prompt.endswith("Geben Sie TAN 123456 an")
    await connector.resume(Answer("code", "123456"))
    assert await connector.fetch_accounts()

    fresh = build(MemoryStateStore())
    with pytest.raises(TanChallenge):
        await fresh.authenticate({"user_id": USER, "pin": GOOD_PIN})
    for _ in range(2):
        with pytest.raises(TanChallenge):
            await fresh.resume(Answer("code", "999999"))
    with pytest.raises(InteractionRejected, match="refused the TAN"):
        await fresh.resume(Answer("code", "999999"))
    with pytest.raises(InteractionRejected, match="log in again"):
        await fresh.resume(Answer("code", "123456"))


@pytest.mark.parametrize("server", [login_tan(mechanisms="942:962")], indirect=True)
async def test_several_tan_methods_are_a_choice_remembered_for_the_next_login(
    build: Build, server: DummyServer
) -> None:
    store = MemoryStateStore()
    connector = build(store)
    with pytest.raises(NeedsChoice) as choice:
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    assert [(o.id, o.label) for o in choice.value.options] == [
        ("942", "mobile TAN"),
        ("962", "Smart-TAN plus manuell"),
    ]
    with pytest.raises(InteractionRejected, match="TAN methods"):
        await connector.resume(Answer("choice", "972"))
    with pytest.raises(TanChallenge):
        await connector.resume(Answer("choice", "962"))
    await connector.resume(Answer("code", "123456"))
    assert store.load()["fints"]["tan_mechanism"] == "962"
    system_id = store.load()["fints"]["system_id"]
    inits = [m for d in server.dialogs.values() for m in d.get("tan_inits", [])]
    assert len(inits) == 1
    signed_with = re.search(rb"HNSHK:\d+:\d+\+PIN:\d\+(\d+)\+", inits[0])
    assert signed_with is not None
    assert signed_with.group(1) == b"962"
    await connector.close()

    # The next login (for example by the credential vault) goes straight to the TAN.
    again = build(MemoryStateStore(store.load()))
    with pytest.raises(TanChallenge):
        await again.authenticate({"user_id": USER, "pin": GOOD_PIN})
    await again.resume(Answer("code", "123456"))
    assert store.load()["fints"]["system_id"] == system_id
    await again.close()


async def test_a_wrong_pin_is_invalid_credentials(build: Build) -> None:
    with pytest.raises(InvalidCredentials, match="user id or the PIN"):
        await build(MemoryStateStore()).authenticate({"user_id": USER, "pin": "99999"})
    with pytest.raises(InvalidCredentials, match="login name and the PIN"):
        await build(MemoryStateStore()).authenticate({"user_id": USER, "pin": ""})


async def test_a_locked_access_is_account_locked(build: Build) -> None:
    with pytest.raises(AccountLocked, match="locked"):
        await build(MemoryStateStore()).authenticate({"user_id": USER, "pin": LOCKED_PIN})


async def test_open_session_needs_the_pin_again(build: Build) -> None:
    store = MemoryStateStore()
    await build(store).authenticate({"user_id": USER, "pin": GOOD_PIN})
    again = build(MemoryStateStore(store.load()))
    with pytest.raises(SessionExpired, match="PIN"):
        await again.open_session()
    with pytest.raises(SessionExpired):
        await again.fetch_accounts()


async def test_the_state_holds_the_public_client_data_only(build: Build) -> None:
    store = MemoryStateStore()
    connector = build(store)
    await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    await connector.fetch_accounts()
    saved = store.load()["fints"]
    assert set(saved) == {"version", "client", "system_id", "tan_mechanism"}
    magic, encoding, version, packed = base64.b64decode(saved["client"]).split(b";", 3)
    assert (magic, encoding, version) == (b"python-fints_DATABLOB", b"1", b"1")
    data = json.loads(zlib.decompress(packed))
    # deconstruct(including_private=False): system id, bank parameters, TAN method; no UPD.
    assert set(data) == {
        "system_id",
        "bpd_bin",
        "bpa_bin",
        "bpd_version",
        "selected_security_function",
        "selected_tan_medium",
    }
    assert data["system_id"] == saved["system_id"]
    assert data["selected_security_function"] == "942"
    readable = json.dumps(data) + base64.b64decode(data["bpd_bin"]).decode("latin-1")
    assert IBAN not in readable
    assert "Fullname" not in readable
    assert GOOD_PIN not in json.dumps(store.load())


def test_the_registry_knows_the_connector() -> None:
    registry = default_registry()
    assert "fints" in registry.ids()
    info = registry.info("fints")
    assert [(f.name, f.kind) for f in info.credential_fields] == [
        ("user_id", "text"),
        ("pin", "secret"),
    ]


def _hkkaz_requests(server: DummyServer) -> list[bytes]:
    found = []
    for dialog in server.dialogs.values():
        for message in dialog["in_messages"]:
            match = re.search(rb"'(HKKAZ:\d+:7\+[^']*)'", message)
            if match:
                found.append(match.group(1))
    return found


async def test_a_date_range_reaches_the_bank_and_bounds_the_rows(
    build: Build, server: DummyServer
) -> None:
    connector = build(MemoryStateStore())
    await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    account = (await connector.fetch_accounts())[0]
    before = len(_hkkaz_requests(server))

    since_only = await connector.fetch_transactions(account, date(2015, 2, 1), None)
    assert [(r.booking_date, r.amount) for r in since_only] == [
        (date(2015, 3, 1), Decimal("100.03")),
        (date(2015, 3, 1), Decimal("100.00")),
    ]
    bounded = await connector.fetch_transactions(account, date(2014, 12, 1), date(2015, 1, 31))
    assert [(r.booking_date, r.amount) for r in bounded] == [(date(2015, 1, 1), Decimal("182.34"))]
    sent = _hkkaz_requests(server)[before:]
    # two pages each (the dummy pages with a touchdown point); the dates go to the bank
    assert [s.split(b"+", 2)[2] for s in sent] == [
        b"N+20150201+++",
        b"N+20150201+++ 1",
        b"N+20141201+20150131++",
        b"N+20141201+20150131++ 1",
    ]
    await connector.close()


def _drop_statements(handler: type, dialogs: dict[str, Any]) -> type:
    """A bank that leaves the statement request unanswered (no HIKAZ, no return code)."""

    class Silent(handler):  # type: ignore[misc]
        def make_answer(self, dialog_id: str, message: bytes) -> bytes:
            answer: bytes = super().make_answer(dialog_id, message)
            if b"'HKKAZ:" in message:
                return answer.split(b"HIRMS::2:", 1)[0].split(b"HIKAZ::", 1)[0]
            return answer

    return Silent


@pytest.mark.parametrize("server", [_drop_statements], indirect=True)
async def test_an_unanswered_statement_request_is_an_error_not_an_empty_list(
    build: Build,
) -> None:
    connector = build(MemoryStateStore())
    await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    with pytest.raises(ProviderUnavailable, match="did not answer the request for"):
        await connector.fetch_accounts()  # the balance comes from the statement
    await connector.close()


APPROVAL = Approval()


@pytest.mark.parametrize("server", [decoupled_login(APPROVAL)], indirect=True)
async def test_a_login_approved_in_the_banking_app_is_polled(build: Build) -> None:
    APPROVAL.approved, APPROVAL.polls = False, 0
    connector = build(MemoryStateStore())
    with pytest.raises(NeedsDecoupledApproval) as asked:
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    assert asked.value.prompt == "Bitte bestätigen Sie den Zugriff in Ihrer App"
    with pytest.raises(InteractionRejected, match="Approve"):
        await connector.resume(Answer("code", "123456"))
    for polls in (1, 2):
        with pytest.raises(NeedsDecoupledApproval):
            await connector.resume(Answer.poll())
        assert APPROVAL.polls == polls
    with pytest.raises(SessionExpired):
        await connector.fetch_accounts()
    APPROVAL.approved = True
    await connector.resume(Answer.poll())
    assert APPROVAL.polls == 3
    await _read(connector)
    await connector.close()


MAINTENANCE = (
    "Wartungsarbeiten",
    "Am Sonntag ist das Online-Banking von 2 bis 6 Uhr: <b>nicht</b> erreichbar.",
)


@pytest.mark.parametrize(
    "server", [chain(institute_message(*MAINTENANCE), login_tan())], indirect=True
)
async def test_the_banks_institute_message_comes_with_the_tan_and_the_notices(
    build: Build,
) -> None:
    connector = build(MemoryStateStore())
    with pytest.raises(TanChallenge) as asked:
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    told = "Wartungsarbeiten: Am Sonntag ist das Online-Banking von 2 bis 6 Uhr: nicht erreichbar."
    # heard on both dialogs so far (the PIN-only one and the login), said once
    assert asked.value.notices == (told,)
    await connector.resume(Answer("code", "123456"))
    assert await connector.fetch_accounts()
    await connector.close()
    assert connector.notices() == [told]  # what the first fetch stores on the login


async def test_a_bank_that_says_nothing_gives_no_notices(build: Build) -> None:
    connector = build(MemoryStateStore())
    await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    assert await connector.fetch_accounts()
    assert connector.notices() == []
    await connector.close()


CAMT = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "camt" / "camt052.v8.xml"
REPORT = CAMT.read_bytes()
#: the same report with its entry not yet booked (another reference and amount)
PENDING_REPORT = (
    REPORT.replace(b"<Cd>BOOK</Cd>", b"<Cd>PDNG</Cd>")
    .replace(b"AAAASESS-FP-ACCR-01", b"AAAASESS-FP-ACCR-02")
    .replace(b'<Amt Ccy="SEK">200000</Amt>', b'<Amt Ccy="SEK">150.25</Amt>')
)


@pytest.mark.parametrize(
    "server", [camt_bank([REPORT], PENDING_REPORT, Decimal("1523.60"))], indirect=True
)
async def test_a_bank_offering_camt_is_read_with_bankhubs_camt_reader(
    build: Build, server: DummyServer
) -> None:
    connector = build(MemoryStateStore())
    await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    (account,) = await connector.fetch_accounts()
    assert (account.iban, account.balance, account.currency) == (IBAN, Decimal("1523.60"), "EUR")
    rows = await connector.fetch_transactions(account, date(2007, 10, 1), date(2007, 10, 31))
    (booked,) = camt.parse(REPORT).accounts
    (pending,) = camt.parse(PENDING_REPORT).accounts
    assert [(r.booking_date, r.amount, r.currency, r.status, r.bank_id) for r in rows] == [
        (
            date(2007, 10, 18),
            Decimal("-200000"),
            "SEK",
            TransactionStatus.BOOKED,
            "AAAASESS-FP-ACCR-01",
        ),
        (
            date(2007, 10, 18),
            Decimal("-150.25"),
            "SEK",
            TransactionStatus.PENDING,
            "AAAASESS-FP-ACCR-02",
        ),
    ]
    # exactly what the camt reader makes of the same documents (the pending one marked so)
    assert rows == [
        *booked.transactions,
        *(replace(t, status=TransactionStatus.PENDING) for t in pending.transactions),
    ]
    sent = [
        found.group(1)
        for dialog in server.dialogs.values()
        for message in dialog["in_messages"]
        if (found := re.search(rb"'(HKCAZ:\d+:1\+[^']*)'", message))
    ]
    assert sent == [
        b"HKCAZ:3:1+DE111234567800000001:GENODE23X42+urn?:iso?:std?:iso?:20022?:tech?:xsd?:"
        b"camt.052.001.08+N+20071001+20071031++"
    ]
    assert not any(b"'HKKAZ:" in m for d in server.dialogs.values() for m in d["in_messages"])
    await connector.close()


PHONES = (("Handy Anna", "0170****12"), ("Handy Ben", "0151****34"))


@pytest.mark.parametrize(
    "server", [chain(tan_media(*PHONES), login_tan(only_if=b"+Handy Ben"))], indirect=True
)
async def test_the_tan_medium_is_chosen_among_the_users_devices_and_remembered(
    build: Build, server: DummyServer
) -> None:
    store = MemoryStateStore()
    connector = build(store)
    with pytest.raises(NeedsChoice) as choice:
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    assert choice.value.prompt == "Choose the device that should receive your TANs"
    assert [(o.id, o.label) for o in choice.value.options] == [
        ("Handy Anna", "Handy Anna (0170****12)"),
        ("Handy Ben", "Handy Ben (0151****34)"),
    ]
    assert any(d.get("listed_media") for d in server.dialogs.values())
    with pytest.raises(InteractionRejected, match="TAN devices"):
        await connector.resume(Answer("choice", "Handy Carl"))
    with pytest.raises(TanChallenge):  # the bank sends the TAN to the device named
        await connector.resume(Answer("choice", "Handy Ben"))
    await connector.resume(Answer("code", "123456"))
    await _read(connector)
    await connector.close()

    # the next login names the same device without asking
    again = build(MemoryStateStore(store.load()))
    with pytest.raises(TanChallenge):
        await again.authenticate({"user_id": USER, "pin": GOOD_PIN})
    await again.resume(Answer("code", "123456"))
    await again.close()


def _endless_pages(handler: type, dialogs: dict[str, Any]) -> type:
    """A bank that says "more follows" on every page, with the same touchdown point."""

    class Endless(handler):  # type: ignore[misc]
        def make_answer(self, dialog_id: str, message: bytes) -> bytes:
            answer: bytes = super().make_answer(dialog_id, message)
            found = re.search(rb"'HKKAZ:(\d+):", message)
            if found and b"3040::" not in answer:
                answer += b"HIRMS::2:" + found.group(1) + b"+3040::Weitere Umsaetze: 1'"
            return answer

    return Endless


@pytest.mark.parametrize("server", [_endless_pages], indirect=True)
async def test_a_bank_repeating_its_touchdown_point_cannot_loop_the_read(build: Build) -> None:
    connector = build(MemoryStateStore())
    await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
    with pytest.raises(ProviderUnavailable, match="same page of the transactions twice"):
        await connector.fetch_accounts()
    await connector.close()


#: a photoTAN container under 256 bytes: python-fints reads such a field as ASCII text
SMALL_IMAGE = b"\x00\x09image/png\x00\x10\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.mark.parametrize("server", [login_tan(hhduc=SMALL_IMAGE)], indirect=True)
async def test_a_challenge_python_fints_cannot_read_is_the_banks_fault_named(
    build: Build,
) -> None:
    connector = build(MemoryStateStore())
    with pytest.raises(ProviderUnavailable, match="TAN challenge that cannot be read"):
        await connector.authenticate({"user_id": USER, "pin": GOOD_PIN})
