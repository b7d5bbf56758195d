"""S3-S7 for team members: passwords, TOTP, lock-out, sessions and re-authentication."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard import passwords, services, totp
from bankhub.dashboard.models import Member, MemberSession
from bankhub.dashboard.roles import Role
from bankhub.security.ratelimit import RateLimits
from tests.conftest import Harness, make_settings
from tests.dashboard.support import (
    PASSWORD,
    Visitor,
    csrf_of,
    make_member,
    member_row,
    recovery_codes_page,
)

Visitors = Callable[..., Visitor]
OWNER_PASSWORD = "the owner's own long phrase"


# --- S3: passwords ------------------------------------------------------------------------------


def test_passwords_are_argon2id_with_the_bar_parameters() -> None:
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, PASSWORD + "x")
    assert not passwords.verify(None, PASSWORD)


def test_password_rules_length_and_common_list() -> None:
    for weak in (
        "short phrase",  # 12 is fine, 11 is not: this one has 12, see below
        "elevenchars",
        "password1234",
        "Password1234!",
        "qwertyuiop123",
        "123qweasdzxc",
        "aaaaaaaaaaaaaaaa",
        "abcabcabcabc",
        "alicealice2024",
    ):
        if weak == "short phrase":
            passwords.check_new(weak)  # exactly 12, not common: allowed
            continue
        try:
            passwords.check_new(weak, ("alice", "example"))
        except passwords.WeakPassword:
            continue
        raise AssertionError(f"{weak!r} was accepted")
    # no composition rules; long passphrases up to 256 characters are allowed
    passwords.check_new("correct horse battery staple")
    passwords.check_new("x" * 100 + "y" * 28 + "a long tail of words")
    assert len(passwords.common_passwords()) > 20_000


# --- S4: TOTP -----------------------------------------------------------------------------------


def test_totp_matches_the_rfc_6238_vectors() -> None:
    """RFC 6238 appendix B (SHA-1 seed), last six digits of each eight-digit value."""
    seed = b"12345678901234567890"
    vectors = {
        59: "94287082",
        1111111109: "07081804",
        1111111111: "14050471",
        1234567890: "89005924",
        2000000000: "69279037",
        20000000000: "65353130",
    }
    for seconds, expected in vectors.items():
        step = totp.step_of(datetime.fromtimestamp(seconds, UTC))
        assert totp.code_at(seed, step) == expected[-6:]


def test_totp_window_and_single_use() -> None:
    seed = totp.new_seed()
    assert len(seed) * 8 >= 160
    now = datetime(2026, 11, 20, 9, 0, 10, tzinfo=UTC)
    step = totp.step_of(now)
    for offset in (-1, 0, 1):
        assert totp.matching_step(seed, totp.code_at(seed, step + offset), now, None) == (
            step + offset
        )
    for offset in (-2, 2):
        code = totp.code_at(seed, step + offset)
        if code not in {totp.code_at(seed, step + o) for o in (-1, 0, 1)}:
            assert totp.matching_step(seed, code, now, None) is None
    # a code of a step already used (or older) is refused: no code works twice
    assert totp.matching_step(seed, totp.code_at(seed, step), now, step) is None
    assert totp.matching_step(seed, totp.code_at(seed, step - 1), now, step) is None
    assert totp.matching_step(seed, totp.code_at(seed, step + 1), now, step) == step + 1
    # pyotp, an independent implementation, agrees
    assert pyotp.TOTP(totp.seed_text(seed)).at(now) == totp.code_at(seed, step)


# --- first owner, enrolment ---------------------------------------------------------------------


async def _sign_up(
    h: Harness, v: Visitor, email: str = "owner@example.com"
) -> tuple[str, list[str]]:
    page = await v.get("/dashboard/sign-up")
    assert page.status_code == 200
    answer = await v.post(
        "/dashboard/sign-up",
        {"email": email, "password": OWNER_PASSWORD, "password2": OWNER_PASSWORD},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/dashboard/enrol"
    enrol = await v.get("/dashboard/enrol")
    assert enrol.status_code == 200
    seed = enrol.text.split('id="manual-key">', 1)[1].split("<", 1)[0]
    assert 'src="data:image/svg+xml' in enrol.text  # the QR code, no script
    done = await v.post("/dashboard/enrol", {"code": pyotp.TOTP(seed).at(h.clock())})
    _, codes = await recovery_codes_page(v, done)
    return seed, codes


async def test_first_owner_signs_up_and_enrols_then_sign_up_closes(
    harness: Harness, visitors: Visitors
) -> None:
    v = visitors()
    start = await v.get("/dashboard")
    assert start.status_code == 303
    assert start.headers["location"] == "/dashboard/sign-in"
    seed, codes = await _sign_up(harness, v)
    home = await v.get("/dashboard")
    assert home.status_code == 200
    assert "owner@example.com" in home.text

    row = await member_row(harness, "owner@example.com")
    assert row is not None
    assert row.role == "owner"
    assert row.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    # S4: the seed is stored encrypted under the keyring, bound to this row
    assert row.totp_seed_enc is not None
    assert row.totp_seed_enc.startswith("v1.")
    assert seed not in row.totp_seed_enc
    assert totp.seed_text(services.seed_of(harness.hub.keyring, row)) == seed
    # recovery codes only as keyed hashes
    assert len(row.recovery_hashes) == 10
    assert not {c for c in codes} & set(row.recovery_hashes)

    # with a member in place, sign-up is closed: invitations only
    other = visitors()
    closed = await other.get("/dashboard/sign-up")
    assert closed.status_code == 303
    assert closed.headers["location"] == "/dashboard/sign-in"
    await other.get("/dashboard/sign-in")
    refused = await other.post(
        "/dashboard/sign-up",
        {"email": "late@example.com", "password": PASSWORD, "password2": PASSWORD},
    )
    assert refused.status_code == 403
    assert await member_row(harness, "late@example.com") is None


async def test_sign_up_refuses_a_common_password(harness: Harness, visitors: Visitors) -> None:
    v = visitors()
    await v.get("/dashboard/sign-up")
    answer = await v.post(
        "/dashboard/sign-up",
        {"email": "o@example.com", "password": "password1234", "password2": "password1234"},
    )
    assert answer.status_code == 200
    assert "too common" in answer.text
    assert await member_row(harness, "o@example.com") is None


async def test_enrolment_cannot_be_skipped(harness: Harness, visitors: Visitors) -> None:
    v = visitors()
    await v.get("/dashboard/sign-up")
    await v.post(
        "/dashboard/sign-up",
        {"email": "o@example.com", "password": OWNER_PASSWORD, "password2": OWNER_PASSWORD},
    )
    for path in ("/dashboard", "/dashboard/apps", "/dashboard/team"):
        answer = await v.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dashboard/enrol"
    await v.get("/dashboard/enrol")
    wrong = await v.post("/dashboard/enrol", {"code": "000000"})
    assert wrong.status_code == 200
    assert "not right" in wrong.text


# --- sign-in, S5 lock-out -----------------------------------------------------------------------


async def test_sign_in_with_password_and_code(harness: Harness, visitors: Visitors) -> None:
    person = await make_member(harness, Role.DEVELOPER)
    v = visitors()
    await v.sign_in(person)
    assert "developer@example.com" in (await v.get("/dashboard")).text
    # the same code again (another browser, same step) is refused: each code once
    w = visitors()
    await w.get("/dashboard/sign-in")
    await w.post("/dashboard/sign-in", {"email": person.email, "password": person.password})
    await w.get("/dashboard/sign-in/code")
    again = await w.post("/dashboard/sign-in/code", {"code": person.code(harness)})
    assert again.status_code == 200
    assert services.REFUSED in again.text


async def test_recovery_codes_work_once(harness: Harness, visitors: Visitors) -> None:
    v = visitors()
    _, codes = await _sign_up(harness, v)
    person_email = "owner@example.com"
    for attempt in range(2):
        w = visitors()
        await w.get("/dashboard/sign-in")
        await w.post("/dashboard/sign-in", {"email": person_email, "password": OWNER_PASSWORD})
        await w.get("/dashboard/sign-in/code")
        answer = await w.post("/dashboard/sign-in/code", {"code": codes[3].upper()})
        if attempt == 0:
            assert answer.status_code == 303
            assert answer.headers["location"] == "/dashboard"
        else:
            assert answer.status_code == 200
            assert services.REFUSED in answer.text
    row = await member_row(harness, person_email)
    assert row is not None
    assert len(row.recovery_hashes) == 9


async def test_five_wrong_codes_block_and_the_message_never_says_which(
    harness: Harness, visitors: Visitors
) -> None:
    person = await make_member(harness, Role.VIEWER)
    messages = set()
    v = visitors()
    await v.get("/dashboard/sign-in")
    wrong_password = await v.post(
        "/dashboard/sign-in", {"email": person.email, "password": "not the password!"}
    )
    messages.add(_notice(wrong_password.text))
    unknown = await v.post(
        "/dashboard/sign-in", {"email": "nobody@example.com", "password": "not the password!"}
    )
    messages.add(_notice(unknown.text))
    await v.post("/dashboard/sign-in", {"email": person.email, "password": person.password})
    for _ in range(4):  # 1 wrong password + 4 wrong codes = 5 consecutive failures
        await v.get("/dashboard/sign-in/code")
        wrong = await v.post("/dashboard/sign-in/code", {"code": "000000"})
        messages.add(_notice(wrong.text))
    assert messages == {services.REFUSED}
    row = await member_row(harness, person.email)
    assert row is not None
    assert row.locked_until is not None
    # blocked: even the right password and code are refused, with the same message
    w = visitors()
    await w.get("/dashboard/sign-in")
    blocked = await w.post(
        "/dashboard/sign-in", {"email": person.email, "password": person.password}
    )
    assert blocked.status_code == 200
    assert _notice(blocked.text) == services.REFUSED
    # the block is timed: 15 minutes later the member signs in
    harness.clock.advance(seconds=harness.hub.settings.dashboard_lock_seconds + 1)
    await visitors().sign_in(person)
    async with harness.hub.db.transaction() as db:
        actions = list(
            (
                await db.execute(
                    select(AuditEntry.action).where(AuditEntry.actor == f"member:{person.email}")
                )
            ).scalars()
        )
    assert "member.locked" in actions
    assert "member.signed_in" in actions


def _notice(text: str) -> str:
    return text.split('class="notice" role="alert">', 1)[1].split("<", 1)[0].replace("&#39;", "'")


# --- S6: sessions -------------------------------------------------------------------------------


async def test_a_new_session_id_at_each_step_and_only_its_hash_is_stored(
    harness: Harness, visitors: Visitors
) -> None:
    person = await make_member(harness, Role.ADMIN)
    v = visitors()
    await v.get("/dashboard/sign-in")
    await v.post("/dashboard/sign-in", {"email": person.email, "password": person.password})
    halfway = v.session_cookie()
    await v.get("/dashboard/sign-in/code")
    await v.post("/dashboard/sign-in/code", {"code": person.code(harness)})
    full = v.session_cookie()
    assert halfway
    assert full
    assert halfway != full
    assert len(full) >= 43  # 256 bits, base64url
    async with harness.hub.db.transaction() as db:
        rows = list((await db.execute(select(MemberSession))).scalars())
    assert len(rows) == 1
    assert rows[0].id_hash == services.session_hash(harness.hub.hasher, full)
    assert full not in rows[0].id_hash
    # the half-way id no longer opens anything
    stale = visitors()
    stale.client.cookies.set("bankhub_dash", halfway)
    answer = await stale.get("/dashboard")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/sign-in"


async def test_cookies_are_host_prefixed_secure_httponly_strict_over_https(
    harness: Harness, visitors: Visitors
) -> None:
    person = await make_member(harness, Role.VIEWER)
    v = visitors(base_url="https://testserver.local")
    await v.get("/dashboard/sign-in")
    answer = await v.client.post(
        "/dashboard/sign-in",
        data={"csrf": v.csrf, "email": person.email, "password": person.password},
    )
    assert answer.status_code == 303, answer.text
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("__Host-bankhub_dash=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "path=/", "samesite=strict"} <= flags
    assert not any(f.startswith("domain=") for f in flags)


async def test_idle_timeout_of_15_minutes(harness: Harness, visitors: Visitors) -> None:
    person = await make_member(harness, Role.VIEWER)
    v = visitors()
    await v.sign_in(person)
    harness.clock.advance(minutes=14, seconds=59)
    assert (await v.get("/dashboard")).status_code == 200  # activity resets the idle clock
    harness.clock.advance(minutes=14, seconds=59)
    assert (await v.get("/dashboard")).status_code == 200
    harness.clock.advance(minutes=15)
    gone = await v.get("/dashboard")
    assert gone.status_code == 303
    assert gone.headers["location"] == "/dashboard/sign-in"
    async with harness.hub.db.transaction() as db:
        assert list((await db.execute(select(MemberSession))).scalars()) == []


async def test_absolute_timeout_of_8_hours(harness: Harness, visitors: Visitors) -> None:
    person = await make_member(harness, Role.VIEWER)
    v = visitors()
    await v.sign_in(person)
    for _ in range(47):  # active every 10 minutes: 7 h 50 min
        harness.clock.advance(minutes=10)
        assert (await v.get("/dashboard")).status_code == 200
    harness.clock.advance(minutes=10)  # 8 h after sign-in
    gone = await v.get("/dashboard")
    assert gone.status_code == 303
    assert gone.headers["location"] == "/dashboard/sign-in"


async def test_sign_out_ends_the_session_on_the_server(
    harness: Harness, visitors: Visitors
) -> None:
    person = await make_member(harness, Role.VIEWER)
    v = visitors()
    await v.sign_in(person)
    token = v.session_cookie()
    await v.get("/dashboard")
    out = await v.post("/dashboard/sign-out")
    assert out.status_code == 303
    assert out.headers["location"] == "/dashboard/sign-in"
    replay = visitors()
    replay.client.cookies.set("bankhub_dash", token or "")
    answer = await replay.get("/dashboard")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/sign-in"


# --- S7: re-authentication ----------------------------------------------------------------------


async def test_key_changes_need_a_recent_reauthentication(
    harness: Harness, visitors: Visitors
) -> None:
    person = await make_member(harness, Role.DEVELOPER)
    v = visitors()
    await v.sign_in(person)
    client_id = harness.creds["client_id"]
    page = await v.get(f"/dashboard/apps/{client_id}")
    key_id = page.text.split('<tr data-key="', 2)[2].split('"', 1)[0]  # the app-secret key
    harness.clock.advance(minutes=6)  # past the 5-minute re-authentication window
    await v.get(f"/dashboard/apps/{client_id}")
    gated = await v.post(
        f"/dashboard/apps/{client_id}/keys/{key_id}/revoke",
        headers={"referer": f"http://testserver.local/dashboard/apps/{client_id}"},
    )
    assert gated.status_code == 303
    assert gated.headers["location"].startswith("/dashboard/reauth?pending=")
    assert await _key_live(harness, key_id)
    # a page (a GET) that needs it goes there, and back to itself
    direct = await v.get(f"/dashboard/reauth?next=/dashboard/apps/{client_id}")
    assert direct.status_code == 200
    wrong = await v.post(
        "/dashboard/reauth",
        {"password": person.password, "code": "123456", "next": f"/dashboard/apps/{client_id}"},
    )
    assert wrong.status_code == 200
    assert services.REFUSED in wrong.text
    ok = await v.post(
        "/dashboard/reauth",
        {
            "password": person.password,
            "code": person.code(harness),
            "next": f"/dashboard/apps/{client_id}",
        },
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == f"/dashboard/apps/{client_id}?done=reauth"
    await v.get(ok.headers["location"])
    done = await v.post(f"/dashboard/apps/{client_id}/keys/{key_id}/revoke", {"confirm": "yes"})
    assert done.status_code == 303
    assert not await _key_live(harness, key_id)


async def _key_live(h: Harness, key_id: str) -> bool:
    from bankhub.partners.models import ApiKey

    async with h.hub.db.transaction() as db:
        key = (await db.execute(select(ApiKey).where(ApiKey.key_id == key_id))).scalar_one()
        return key.revoked_at is None


async def test_reauth_next_is_only_ever_our_own_page(harness: Harness, visitors: Visitors) -> None:
    person = await make_member(harness, Role.VIEWER)
    v = visitors()
    await v.sign_in(person)
    for evil in ("https://evil.example/", "//evil.example/x", "/dashboard//evil.example"):
        await v.get("/dashboard/reauth", params={"next": evil})
        harness.clock.advance(seconds=30)
        answer = await v.post(
            "/dashboard/reauth",
            {"password": person.password, "code": person.code(harness), "next": evil},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dashboard?done=reauth"


async def test_csrf_token_and_origin_are_checked(harness: Harness, visitors: Visitors) -> None:
    person = await make_member(harness, Role.OWNER)
    v = visitors()
    await v.sign_in(person)
    client_id = harness.creds["client_id"]
    page = await v.get(f"/dashboard/apps/{client_id}")
    key_id = page.text.split('<tr data-key="', 2)[2].split('"', 1)[0]  # the app-secret key
    path = f"/dashboard/apps/{client_id}/keys/{key_id}/revoke"
    token = csrf_of(page.text)
    assert (await v.post(path, csrf="")).status_code == 403
    assert (
        await v.post(path, csrf=token[:-1] + ("1" if token[-1] == "0" else "0"))
    ).status_code == 403
    foreign = await v.post(path, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    null = await v.post(path, headers={"origin": "null"})
    assert null.status_code == 403
    cross = await v.post(path, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    # another visitor's token does not work with this session
    other = visitors()
    await other.get("/dashboard/sign-in")
    assert (await v.post(path, csrf=other.csrf)).status_code == 403
    assert await _key_live(harness, key_id)
    assert (await v.post(path, {"confirm": "yes"}, csrf=token)).status_code == 303
    assert not await _key_live(harness, key_id)


async def test_pages_carry_the_security_headers(harness: Harness, visitors: Visitors) -> None:
    person = await make_member(harness, Role.OWNER)
    v = visitors()
    pages = [await v.get("/dashboard/sign-in")]
    await v.sign_in(person)
    for path in ("/dashboard", "/dashboard/apps", "/dashboard/team", "/dashboard/smtp"):
        pages.append(await v.get(path))
    pages.append(await v.get("/dashboard/no-such-page"))
    for answer in pages:
        csp = answer.headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert "style-src 'self'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert answer.headers["cross-origin-opener-policy"] == "same-origin"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script" not in answer.text
        assert "style=" not in answer.text


async def test_member_strings_are_escaped(harness: Harness, visitors: Visitors) -> None:
    """S29: an app named with markup shows as text."""
    person = await make_member(harness, Role.OWNER)
    v = visitors()
    await v.sign_in(person)
    await v.get("/dashboard/apps")
    await v.post("/dashboard/apps", {"name": '<img src=x onerror="alert(1)">'})
    listing = await v.get("/dashboard/apps")
    assert "<img src=x" not in listing.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in listing.text


async def test_seeds_are_bound_to_their_row(harness: Harness) -> None:
    """A seed copied onto another member's row does not decrypt there (S19)."""
    a = await make_member(harness, Role.VIEWER, "a@example.com")
    await make_member(harness, Role.VIEWER, "b@example.com")
    async with harness.hub.db.transaction() as db:
        rows = {m.email: m for m in (await db.execute(select(Member))).scalars()}
        rows["b@example.com"].totp_seed_enc = rows["a@example.com"].totp_seed_enc
    row = await member_row(harness, "b@example.com")
    assert row is not None
    try:
        services.seed_of(harness.hub.keyring, row)
    except ValueError:
        pass
    else:
        raise AssertionError("a seed decrypted on another member's row")
    assert a.seed


def test_sign_in_steps_count_against_the_stricter_form_limit(tmp_path: Path) -> None:
    """S33: sign-in, code and re-authentication posts share the per-address form limit."""
    settings = make_settings(tmp_path, "sqlite+aiosqlite://", rate_limit_connect="3/minute")
    limits = RateLimits(settings)
    for path in ("/dashboard/sign-in", "/dashboard/sign-in/code", "/dashboard/reauth"):
        scope: Any = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [],
            "client": ("192.0.2.1", 1000),
        }
        names = {policy.name for policy, _ in limits.applicable(scope)}
        assert "connect" in names, path
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/dashboard/sign-in",
        "headers": [],
        "client": ("192.0.2.1", 1000),
    }
    assert "connect" not in {policy.name for policy, _ in limits.applicable(scope)}
