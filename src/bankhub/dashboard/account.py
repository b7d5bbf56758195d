"""A member's own account and the team's roles and invitations, beyond joining and leaving.

Changing one's password needs the current one (a wrong one counts towards the sign-in block,
S5) and signs out every other session (S6); new recovery codes need a code from the
authenticator and make the old ones stop working; a member who lost their authenticator signs
in with a recovery code and sets up a new one (``services.begin_reset``). A role is changed by
whom ``roles.may_manage`` allows, and never leaves the team without an owner. Every change is
audited. Services never commit; the route does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.clock import as_utc
from bankhub.config import Settings
from bankhub.dashboard import passwords, services, totp
from bankhub.dashboard.models import Invite, Member, MemberSession
from bankhub.dashboard.roles import Role
from bankhub.dashboard.services import FormError
from bankhub.security.crypto import Cipher
from bankhub.security.secrets import SecretHasher

WRONG_PASSWORD = "The current password is not right."  # noqa: S105 - a message  # nosec B105
WRONG_CODE = "That code is not right. Use the code your authenticator app shows now."
LAST_OWNER = "The team needs an owner: make another member owner first."


def _record(
    session: AsyncSession,
    now: datetime,
    actor: Member,
    action: str,
    target: Member | Invite,
    detail: Mapping[str, object] | None = None,
) -> None:
    audit.record(
        session,
        now=now,
        actor=services.member_actor(actor),
        action=action,
        target_type="member" if isinstance(target, Member) else "invite",
        target_id=target.id,
        detail=dict(detail) if detail is not None else None,
    )


async def end_other_sessions(session: AsyncSession, member_id: int, keep: int | None) -> int:
    """Ends every session of the member but ``keep`` (this browser's); returns how many."""
    query = delete(MemberSession).where(MemberSession.member_id == member_id)
    if keep is not None:
        query = query.where(MemberSession.id != keep)
    result = await session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


async def change_password(
    session: AsyncSession,
    member: Member,
    *,
    current: str,
    new: str,
    again: str,
    now: datetime,
    settings: Settings,
    keep_session: int | None,
) -> int:
    """Sets a new password; returns how many other sessions were signed out."""
    if services.is_locked(member, now):
        raise FormError(services.REFUSED)
    if not passwords.verify(member.password_hash, current):
        services.note_failure(session, member, now, settings, "password")
        raise FormError(WRONG_PASSWORD)
    if new != again:
        raise FormError("The new passwords differ.")
    if new == current:
        raise FormError("The new password is the one you have now; choose another.")
    local, _, domain = member.email.partition("@")
    try:
        passwords.check_new(new, (local, domain.split(".")[0], "bankhub", "dashboard"))
    except passwords.WeakPassword as exc:
        raise FormError(str(exc)) from None
    member.password_hash = passwords.hash_password(new)
    member.failed_count = 0
    ended = await end_other_sessions(session, member.id, keep_session)
    _record(session, now, member, "member.password_changed", member, {"sessions_ended": ended})
    return ended


def renew_recovery_codes(
    session: AsyncSession,
    box: Cipher,
    hasher: SecretHasher,
    member: Member,
    code: str,
    now: datetime,
    settings: Settings,
) -> list[str]:
    """New recovery codes after a code from the authenticator; the old codes stop working."""
    if services.is_locked(member, now):
        raise FormError(services.REFUSED)
    step = totp.matching_step(services.seed_of(box, member), code, now, member.totp_last_step)
    if step is None:
        services.note_failure(session, member, now, settings, "code")
        raise FormError(WRONG_CODE)
    member.totp_last_step = step
    codes = services.new_recovery_codes(hasher, member)
    _record(session, now, member, "member.recovery_codes_renewed", member, {"count": len(codes)})
    return codes


def start_reset(
    session: AsyncSession,
    box: Cipher,
    hasher: SecretHasher,
    member: Member,
    code: str,
    now: datetime,
    settings: Settings,
) -> None:
    """A recovery code (used up) opens the set-up of a new authenticator. Failures count
    towards the sign-in block (S5) with the same generic refusal."""
    if services.is_locked(member, now):
        raise services.SignInRefused()
    if not services.use_recovery_code(hasher, member, code):
        services.note_failure(session, member, now, settings, "code")
        raise services.SignInRefused()
    services.begin_reset(box, member)
    _record(
        session,
        now,
        member,
        "member.mfa_reset_started",
        member,
        {"recovery_codes_left": len(member.recovery_hashes)},
    )


async def change_role(
    session: AsyncSession, actor: Member, target: Member, role: Role, now: datetime
) -> bool:
    """Gives ``target`` the role; False when it had it already. The last owner keeps theirs.
    Who may do it is the route's check (``roles.may_manage``)."""
    before = target.role
    if before == role.value:
        return False
    if before == Role.OWNER.value:
        owners = select(func.count(Member.id)).where(Member.role == Role.OWNER.value)
        if int((await session.execute(owners)).scalar_one()) <= 1:
            raise FormError(LAST_OWNER)
    target.role = role.value
    await session.flush()
    detail = {"email": target.email, "from": before, "to": role.value}
    _record(session, now, actor, "member.role_changed", target, detail)
    return True


async def revoke_invite(
    session: AsyncSession, actor: Member, invite: Invite, now: datetime
) -> None:
    """The invitation's link stops working at once."""
    _record(
        session,
        now,
        actor,
        "member.invite_revoked",
        invite,
        {"email": invite.email, "role": invite.role},
    )
    await session.delete(invite)
    await session.flush()


async def invite_by_id(session: AsyncSession, invite_id: int, now: datetime) -> Invite | None:
    """An open (unused, unexpired) invitation, by its id."""
    row = await session.get(Invite, invite_id)
    if row is None or row.accepted_at is not None or as_utc(row.expires_at) <= now:
        return None
    return row
