"""The team beyond joining and leaving, and one's own account: a member's role (never the last
owner's), an invitation revoked or sent again, one's password (other sessions signed out), new
recovery codes (the old ones stop), and a new authenticator after a lost one. Each audited."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyotp
from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard import services, totp
from bankhub.dashboard.roles import Role
from tests.conftest import Harness
from tests.dashboard.conftest import SmtpServer
from tests.dashboard.support import (
    PASSWORD,
    Person,
    Visitor,
    invitation_page,
    make_member,
    member_row,
    recovery_codes_page,
)

Visitors = Callable[..., Visitor]
LINK = re.compile(r"https?://\S+/dashboard/invite/[A-Za-z0-9_-]+")
NEW_PASSWORD = "seven herons over the estuary"


async def _actions(h: Harness, action: str) -> list[AuditEntry]:
    async with h.hub.db.transaction() as db:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        return list((await db.execute(query)).scalars())


async def _codes(h: Harness, person: Person) -> list[str]:
    """Recovery codes for a member made by ``make_member`` (as enrolment would give)."""
    async with h.hub.db.transaction() as db:
        row = await services.member_by_email(db, person.email)
        assert row is not None
        return services.new_recovery_codes(h.hub.hasher, row)


async def _password_step(v: Visitor, email: str, password: str) -> None:
    await v.get("/dashboard/sign-in")
    answer = await v.post("/dashboard/sign-in", {"email": email, "password": password})
    assert answer.status_code == 303, answer.text
    await v.get(answer.headers["location"])


async def _member_id(h: Harness, email: str) -> int:
    row = await member_row(h, email)
    assert row is not None
    return row.id


# --- roles --------------------------------------------------------------------------------------


async def test_roles_change_within_what_the_role_may_manage(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    owner = await make_member(h, Role.OWNER)
    admin = await make_member(h, Role.ADMIN)
    viewer = await make_member(h, Role.VIEWER)
    o = visitors()
    await o.sign_in(owner)
    page = await o.get("/dashboard/team")
    assert f'action="/dashboard/team/{await _member_id(h, viewer.email)}/role"' in page.text
    viewer_id = await _member_id(h, viewer.email)
    changed = await o.post(f"/dashboard/team/{viewer_id}/role", {"role": "developer"})
    assert changed.status_code == 303
    assert "role was changed" in (await o.get(changed.headers["location"])).text
    row = await member_row(h, viewer.email)
    assert row is not None
    assert row.role == "developer"
    [entry] = await _actions(h, "member.role_changed")
    assert entry.actor == f"member:{owner.email}"
    assert entry.detail == {"email": viewer.email, "from": "viewer", "to": "developer"}

    # an admin: never to owner, never an owner's
    a = visitors()
    await a.sign_in(admin)
    await a.get("/dashboard/team")
    owner_id = await _member_id(h, owner.email)
    assert (await a.post(f"/dashboard/team/{viewer_id}/role", {"role": "owner"})).status_code == 403
    assert (await a.post(f"/dashboard/team/{owner_id}/role", {"role": "viewer"})).status_code == 403
    assert (await a.post(f"/dashboard/team/{viewer_id}/role", {"role": "boss"})).status_code == 400
    row = await member_row(h, owner.email)
    assert row is not None
    assert row.role == "owner"

    # the last owner cannot step down; with a second owner they can
    await o.get("/dashboard/team")
    last = await o.post(f"/dashboard/team/{owner_id}/role", {"role": "admin"})
    assert last.status_code == 409
    assert "The team needs an owner" in last.text
    row = await member_row(h, owner.email)
    assert row is not None
    assert row.role == "owner"
    await o.post(f"/dashboard/team/{await _member_id(h, admin.email)}/role", {"role": "owner"})
    stepped = await o.post(f"/dashboard/team/{owner_id}/role", {"role": "admin"})
    assert stepped.status_code == 303
    row = await member_row(h, owner.email)
    assert row is not None
    assert row.role == "admin"
    # which the very next page honours: an admin no longer makes owners
    await o.get("/dashboard/team")
    denied = await o.post(f"/dashboard/team/{viewer_id}/role", {"role": "owner"})
    assert denied.status_code == 403


# --- invitations --------------------------------------------------------------------------------


async def test_an_invitation_is_sent_again_or_revoked(
    harness: Harness, visitors: Visitors, smtp_server: SmtpServer
) -> None:
    h = harness
    owner = await make_member(h, Role.OWNER)
    o = visitors()
    await o.sign_in(owner)
    await o.get("/dashboard/team")
    shown = await invitation_page(
        o, await o.post("/dashboard/team/invite", {"email": "new@example.com", "role": "viewer"})
    )
    first = LINK.search(shown.text)
    assert first is not None
    invite_id = re.search(r'data-invite="(\d+)"', shown.text)
    assert invite_id is not None

    # mail is off: the new link is shown once, and the old one stops working
    again = await invitation_page(
        o, await o.post(f"/dashboard/team/invites/{invite_id.group(1)}/resend")
    )
    second = LINK.search(again.text)
    assert second is not None
    assert second.group(0) != first.group(0)
    stranger = visitors()
    assert (await stranger.get(first.group(0))).status_code == 404
    assert (await stranger.get(second.group(0))).status_code == 200
    [resent] = await _actions(h, "member.invite_resent")
    assert resent.detail is not None
    assert resent.detail["email"] == "new@example.com"

    # with mail set up, it is mailed
    await o.get("/dashboard/smtp")
    saved = await o.post(
        "/dashboard/smtp",
        {"host": smtp_server.host, "port": str(smtp_server.port), "security": "none"}
        | {"username": "", "password": "", "sender": "hub@example.com"},
    )
    assert saved.status_code == 303
    page = await o.get("/dashboard/team")
    current = re.search(r'data-invite="(\d+)"', page.text)
    assert current is not None
    mailed = await o.post(f"/dashboard/team/invites/{current.group(1)}/resend")
    assert mailed.status_code == 303
    assert "A new invitation was mailed" in (await o.get(mailed.headers["location"])).text
    body = smtp_server.messages[-1].get_body(("plain",))
    assert body is not None
    third = LINK.search(body.get_content())
    assert third is not None
    assert (await stranger.get(second.group(0))).status_code == 404

    page = await o.get("/dashboard/team")
    current = re.search(r'data-invite="(\d+)"', page.text)
    assert current is not None
    revoked = await o.post(f"/dashboard/team/invites/{current.group(1)}/revoke")
    assert revoked.status_code == 303
    assert (await stranger.get(third.group(0))).status_code == 404
    assert "new@example.com" not in (await o.get("/dashboard/team")).text
    [entry] = await _actions(h, "member.invite_revoked")
    assert entry.detail == {"email": "new@example.com", "role": "viewer"}
    gone = await o.post(f"/dashboard/team/invites/{current.group(1)}/revoke")
    assert gone.status_code == 404


async def test_an_admin_cannot_touch_an_owners_invitation(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    o, a = visitors(), visitors()
    await o.sign_in(await make_member(h, Role.OWNER))
    await a.sign_in(await make_member(h, Role.ADMIN))
    await o.get("/dashboard/team")
    shown = await invitation_page(
        o, await o.post("/dashboard/team/invite", {"email": "boss@example.com", "role": "owner"})
    )
    invite_id = re.search(r'data-invite="(\d+)"', shown.text)
    assert invite_id is not None
    page = await a.get("/dashboard/team")
    assert f"/dashboard/team/invites/{invite_id.group(1)}/revoke" not in page.text
    for verb in ("revoke", "resend"):
        answer = await a.post(f"/dashboard/team/invites/{invite_id.group(1)}/{verb}")
        assert answer.status_code == 403, verb


# --- one's password -----------------------------------------------------------------------------


async def test_changing_ones_password_needs_the_current_one_and_signs_out_elsewhere(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    person = await make_member(h, Role.DEVELOPER)
    here, elsewhere = visitors(), visitors()
    await here.sign_in(person)
    await elsewhere.sign_in(person, steps=1)
    await here.get("/dashboard/account")
    form = {"current": "not my password at all", "password": NEW_PASSWORD}
    wrong = await here.post("/dashboard/account/password", form | {"password2": NEW_PASSWORD})
    assert wrong.status_code == 400
    assert "current password is not right" in wrong.text
    row = await member_row(h, person.email)
    assert row is not None
    assert row.failed_count == 1
    weak = await here.post(
        "/dashboard/account/password",
        {"current": person.password, "password": "password1234", "password2": "password1234"},
    )
    assert weak.status_code == 400
    assert "too common" in weak.text
    differ = await here.post(
        "/dashboard/account/password",
        {"current": person.password, "password": NEW_PASSWORD, "password2": NEW_PASSWORD + "!"},
    )
    assert differ.status_code == 400
    assert "differ" in differ.text

    done = await here.post(
        "/dashboard/account/password",
        {"current": person.password, "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert done.status_code == 303
    assert "Your password was changed" in (await here.get(done.headers["location"])).text
    assert (await here.get("/dashboard")).status_code == 200  # this session goes on
    signed_out = await elsewhere.get("/dashboard")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/dashboard/sign-in"
    [entry] = await _actions(h, "member.password_changed")
    assert entry.detail == {"sessions_ended": 1}
    # the old password no longer signs in, the new one does
    old = visitors()
    await old.get("/dashboard/sign-in")
    refused = await old.post(
        "/dashboard/sign-in", {"email": person.email, "password": person.password}
    )
    assert refused.status_code == 200
    assert services.REFUSED in refused.text
    h.clock.advance(seconds=90)  # past the steps the two sign-ins used
    new = visitors()
    await new.sign_in(Person(person.email, NEW_PASSWORD, person.seed, person.role))


# --- recovery codes and a lost authenticator ----------------------------------------------------


async def test_new_recovery_codes_replace_the_old_ones(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    person = await make_member(h, Role.VIEWER)
    old = await _codes(h, person)
    v = visitors()
    await v.sign_in(person)
    page = await v.get("/dashboard/account")
    assert "You have 10 unused recovery codes" in page.text
    wrong = await v.post("/dashboard/account/recovery-codes", {"code": "123456"})
    assert wrong.status_code == 400
    assert "not right" in wrong.text
    renewed, new = await recovery_codes_page(
        v, await v.post("/dashboard/account/recovery-codes", {"code": person.code(h, steps=1)})
    )
    assert "replace your earlier ones" in renewed.text
    assert not set(new) & set(old)
    # the reload made no other set: one renewal, and the codes shown are the ones that work
    [entry] = await _actions(h, "member.recovery_codes_renewed")
    assert entry.detail == {"count": 10}
    row = await member_row(h, person.email)
    assert row is not None
    assert len(row.recovery_hashes) == 10
    for code, works in ((old[0], False), (new[0].upper().replace("-", " "), True)):
        w = visitors()
        await _password_step(w, person.email, person.password)
        answer = await w.post("/dashboard/sign-in/code", {"code": code})
        assert (answer.status_code == 303) is works, code


async def test_a_lost_authenticator_is_replaced_with_a_recovery_code(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    person = await make_member(h, Role.DEVELOPER)
    codes = await _codes(h, person)
    signed_in = visitors()  # a session somewhere, perhaps on the lost phone
    await signed_in.sign_in(person)
    v = visitors()
    await _password_step(v, person.email, person.password)
    code_page = await v.get("/dashboard/sign-in/code")
    assert 'href="/dashboard/sign-in/recover"' in code_page.text
    await v.get("/dashboard/sign-in/recover")
    wrong = await v.post("/dashboard/sign-in/recover", {"code": "aaaaa-bbbbb"})
    assert wrong.status_code == 200
    assert services.REFUSED in wrong.text
    started = await v.post("/dashboard/sign-in/recover", {"code": f"  {codes[0].upper()} "})
    assert started.status_code == 303
    assert started.headers["location"] == "/dashboard/enrol"
    enrol = await v.get("/dashboard/enrol")
    new_seed = re.search(r'id="manual-key">([A-Z2-7]+)<', enrol.text)
    assert new_seed is not None
    assert new_seed.group(1) != person.seed
    assert "keeps working until you confirm" in enrol.text
    link = re.search(r'href="(otpauth://totp/[^"]+)"', enrol.text)
    assert link is not None
    assert f"secret={new_seed.group(1)}" in link.group(1)
    # abandoned here, the old app still signs in
    w = visitors()
    await w.sign_in(person, steps=1)
    # the new app's first code confirms it: the old app, the old codes and sessions are done
    new_code = pyotp.TOTP(new_seed.group(1)).at(h.clock().timestamp())
    done, fresh = await recovery_codes_page(v, await v.post("/dashboard/enrol", {"code": new_code}))
    assert "Two-factor sign-in is set up" in done.text
    assert (await v.get("/dashboard")).status_code == 200
    assert (await signed_in.get("/dashboard")).status_code == 303
    assert (await w.get("/dashboard")).status_code == 303
    row = await member_row(h, person.email)
    assert row is not None
    assert row.totp_pending_enc is None
    assert totp.seed_text(services.seed_of(h.hub.keyring, row)) == new_seed.group(1)
    h.clock.advance(seconds=90)  # a step the old app's code would be new for
    x = visitors()
    await _password_step(x, person.email, person.password)
    old_app = await x.post("/dashboard/sign-in/code", {"code": person.code(h)})
    assert old_app.status_code == 200
    assert services.REFUSED in old_app.text
    old_code = await x.post("/dashboard/sign-in/code", {"code": codes[1]})
    assert old_code.status_code == 200
    new_code_works = await x.post("/dashboard/sign-in/code", {"code": fresh[0]})
    assert new_code_works.status_code == 303, new_code_works.text
    assert [e.detail for e in await _actions(h, "member.mfa_reset_started")] == [
        {"recovery_codes_left": 9}
    ]
    assert len(await _actions(h, "member.mfa_reset")) == 1


def test_codes_are_forgiving_of_spaces_dashes_and_case() -> None:
    seed = totp.new_seed()
    from datetime import UTC, datetime

    now = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    code = totp.code_at(seed, totp.step_of(now))
    for typed in (code, f"{code[:3]} {code[3:]}", f"{code[:3]}-{code[3:]}", f" {code} "):
        assert totp.matching_step(seed, typed, now, None) == totp.step_of(now), typed
    for typed in ("abcde-fghij", "ABCDE FGHIJ", "abcdefghij", " a-b-c-d-e f-g-h-i-j "):
        assert totp.normalise_recovery_code(typed) == "abcde-fghij", typed


async def test_the_code_field_takes_letters(harness: Harness, visitors: Visitors) -> None:
    v = visitors()
    person = await make_member(harness, Role.VIEWER, password=PASSWORD)
    await _password_step(v, person.email, person.password)
    page = await v.get("/dashboard/sign-in/code")
    field = re.search(r'<input id="code"[^>]*>', page.text)
    assert field is not None
    assert "inputmode" not in field.group(0)  # a numeric keypad cannot type a recovery code
