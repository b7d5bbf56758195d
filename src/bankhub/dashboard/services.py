"""Members, sign-in, sessions and invitations. Services never commit; the route does.

Sign-in is two steps: the password (S3), then a TOTP or recovery code (S4). Each failed step
counts against the member; the fifth consecutive one blocks the member for a while (S5), and
the message never says which step failed. A session starts with a fresh random id at each step
(S6); the cookie holds the id, the table only its keyed hash.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.clock import as_utc
from bankhub.config import Settings
from bankhub.dashboard import passwords, totp
from bankhub.dashboard.models import Invite, Member, MemberSession
from bankhub.dashboard.roles import Role
from bankhub.security.crypto import Cipher, associated_data
from bankhub.security.secrets import SecretHasher

SESSION_PURPOSE = "dashboard-session"
INVITE_PURPOSE = "dashboard-invite"
CSRF_PURPOSE = "dashboard-csrf"
#: how long the code step may follow the password step
CODE_STEP_LIFETIME = timedelta(minutes=5)

#: stages of a session (``MemberSession.stage``)
CODE, ENROL, ACTIVE = "code", "enrol", "active"

_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")

REFUSED = "The email, password or code is not right, or sign-in is blocked for a while."


class FormError(ValueError):
    """Input a form must show again with this message; nothing was changed. ``field``: the
    form field it is about, where the page shows it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SignInRefused(Exception):
    """One generic refusal for a wrong password, a wrong code, or a blocked member (S5)."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


def member_actor(member: Member) -> str:
    return f"member:{member.email}"


def normalise_email(text: str) -> str:
    email = text.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise FormError("Enter an email address like name@example.com.", "email")
    return email


def _seed_aad(member: Member) -> bytes:
    return associated_data("-", "members", "totp_seed", member.id)


def seed_of(box: Cipher, member: Member) -> bytes:
    if member.totp_seed_enc is None:
        raise FormError("Two-factor sign-in is not set up for this member.")
    return box.decrypt(member.totp_seed_enc, _seed_aad(member))


def _context(email: str) -> tuple[str, ...]:
    local, _, domain = email.partition("@")
    return (local, domain.split(".")[0], "bankhub", "dashboard")


# --- members ------------------------------------------------------------------------------------


#: the PostgreSQL advisory lock that serialises first-owner sign-ups (an arbitrary constant)
FIRST_OWNER_LOCK = 0x6261_6E6B_6875_6231


async def lock_first_owner(session: AsyncSession) -> None:
    """Two first-owner sign-ups at once must not both see an empty team. On PostgreSQL a
    transaction-scoped advisory lock makes the second wait; SQLite refuses the second writer."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FIRST_OWNER_LOCK})


async def count_members(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(Member.id)))).scalar_one())


async def member_by_email(session: AsyncSession, email: str) -> Member | None:
    query = select(Member).where(Member.email == email)
    return (await session.execute(query)).scalar_one_or_none()


async def list_members(session: AsyncSession) -> list[Member]:
    return list((await session.execute(select(Member).order_by(Member.id))).scalars())


async def create_member(
    session: AsyncSession, box: Cipher, now: datetime, email: str, password: str, role: Role
) -> Member:
    """A member with a chosen password and a new TOTP seed, not yet confirmed (enrolment)."""
    email = normalise_email(email)
    try:
        passwords.check_new(password, _context(email))
    except passwords.WeakPassword as exc:
        raise FormError(str(exc), "password") from None
    if await member_by_email(session, email) is not None:
        raise FormError("There is already a member with this email.", "email")
    member = Member(
        email=email,
        password_hash=passwords.hash_password(password),
        role=role.value,
        recovery_hashes=[],
        failed_count=0,
        created_at=now,
    )
    session.add(member)
    await session.flush()
    member.totp_seed_enc = box.encrypt(totp.new_seed(), _seed_aad(member))
    await session.flush()
    return member


def enrolled(member: Member) -> bool:
    return member.totp_confirmed_at is not None


def _pending_aad(member: Member) -> bytes:
    return associated_data("-", "members", "totp_pending_enc", member.id)


def enrolment_seed(box: Cipher, member: Member) -> bytes:
    """The seed an enrolment shows: a reset's new one (``begin_reset``), else the first one."""
    if member.totp_pending_enc is not None:
        return box.decrypt(member.totp_pending_enc, _pending_aad(member))
    return seed_of(box, member)


def begin_reset(box: Cipher, member: Member) -> None:
    """A new seed for a member who lost their authenticator; the old one works until the new
    one is confirmed (``confirm_enrolment``)."""
    member.totp_pending_enc = box.encrypt(totp.new_seed(), _pending_aad(member))


def confirm_enrolment(
    box: Cipher, hasher: SecretHasher, member: Member, code: str, now: datetime
) -> list[str]:
    """The first code from the member's app proves the seed arrived; returns recovery codes
    (they replace any earlier ones)."""
    seed = enrolment_seed(box, member)
    reset = member.totp_pending_enc is not None
    step = totp.matching_step(seed, code, now, None if reset else member.totp_last_step)
    if step is None:
        raise FormError("That code is not right. Check the time on your phone and try again.")
    if reset:
        member.totp_seed_enc = box.encrypt(seed, _seed_aad(member))
        member.totp_pending_enc = None
    member.totp_last_step = step
    member.totp_confirmed_at = now
    return new_recovery_codes(hasher, member)


def _recovery_hash(hasher: SecretHasher, member: Member, code: str) -> str:
    return hasher.hash(code, purpose=f"dashboard-recovery:{member.id}")


async def remove_member(session: AsyncSession, member: Member) -> None:
    """Deletes the member; their sessions go with it (S6: removal ends sessions)."""
    await end_sessions_of(session, member.id)
    await session.delete(member)
    await session.flush()


async def owners(session: AsyncSession) -> int:
    query = select(func.count(Member.id)).where(Member.role == Role.OWNER.value)
    return int((await session.execute(query)).scalar_one())


# --- sign-in ------------------------------------------------------------------------------------


def is_locked(member: Member, now: datetime) -> bool:
    return member.locked_until is not None and as_utc(member.locked_until) > now


def note_failure(
    session: AsyncSession, member: Member, now: datetime, settings: Settings, step: str
) -> None:
    """One more consecutive failure; the limit blocks the member for a while (S5). Audited."""
    member.failed_count = (member.failed_count or 0) + 1
    locked = member.failed_count >= settings.dashboard_max_failures
    if locked:
        member.locked_until = now + timedelta(seconds=settings.dashboard_lock_seconds)
        member.failed_count = 0
    audit.record(
        session,
        now=now,
        actor=member_actor(member),
        action="member.locked" if locked else "member.sign_in_failed",
        target_type="member",
        target_id=member.id,
        detail={"step": step},
    )


async def check_password(
    session: AsyncSession, email: str, password: str, now: datetime, settings: Settings
) -> Member:
    """The member whose password this is, or SignInRefused (after the same hashing work)."""
    try:
        address = normalise_email(email)
    except FormError:
        address = ""
    member = await member_by_email(session, address) if address else None
    ok = passwords.verify(member.password_hash if member else None, password)
    if member is None:
        raise SignInRefused()
    if is_locked(member, now):
        raise SignInRefused()
    if not ok:
        note_failure(session, member, now, settings, "password")
        raise SignInRefused()
    if passwords.needs_rehash(member.password_hash):
        member.password_hash = passwords.hash_password(password)
    return member


def check_code(
    session: AsyncSession,
    box: Cipher,
    hasher: SecretHasher,
    member: Member,
    code: str,
    now: datetime,
    settings: Settings,
) -> str:
    """A TOTP code (each usable once) or an unused recovery code (removed); returns which."""
    if is_locked(member, now):
        raise SignInRefused()
    step = totp.matching_step(seed_of(box, member), code, now, member.totp_last_step)
    if step is not None:
        member.totp_last_step = step
        return "totp"
    if use_recovery_code(hasher, member, code):
        return "recovery"
    note_failure(session, member, now, settings, "code")
    raise SignInRefused()


def use_recovery_code(hasher: SecretHasher, member: Member, code: str) -> bool:
    """True, and the code is used up, when ``code`` is one of the member's unused recovery
    codes (spaces, dashes and case do not matter)."""
    recovery = totp.normalise_recovery_code(code)
    if not recovery:
        return False
    digest = _recovery_hash(hasher, member, recovery)
    remaining = [h for h in member.recovery_hashes if not secrets.compare_digest(h, digest)]
    if len(remaining) == len(member.recovery_hashes):
        return False
    member.recovery_hashes = remaining
    return True


def new_recovery_codes(hasher: SecretHasher, member: Member) -> list[str]:
    """Fresh recovery codes for the member; the earlier ones stop working."""
    codes = totp.new_recovery_codes()
    member.recovery_hashes = [_recovery_hash(hasher, member, c) for c in codes]
    return codes


def signed_in(session: AsyncSession, member: Member, now: datetime, how: str) -> None:
    member.failed_count = 0
    member.locked_until = None
    member.last_sign_in_at = now
    audit.record(
        session,
        now=now,
        actor=member_actor(member),
        action="member.signed_in",
        target_type="member",
        target_id=member.id,
        detail={"second_factor": how},
    )


# --- sessions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """A session with its id in clear: the cookie's value, never stored."""

    token: str
    row: MemberSession


def session_hash(hasher: SecretHasher, token: str) -> str:
    return hasher.hash(token, purpose=SESSION_PURPOSE)


def csrf_token(hasher: SecretHasher, cookie_value: str) -> str:
    """The form token of a browser: bound to its session (or pre-session) cookie."""
    return hasher.hash(cookie_value, purpose=CSRF_PURPOSE)


async def start_session(
    session: AsyncSession,
    hasher: SecretHasher,
    member: Member,
    stage: str,
    now: datetime,
    *,
    replacing: MemberSession | None = None,
) -> Started:
    """A new random id (256 bits) at every step of signing in; the old row is deleted."""
    if replacing is not None:
        await end_session(session, replacing)
    token = secrets.token_urlsafe(32)
    row = MemberSession(
        id_hash=session_hash(hasher, token),
        member_id=member.id,
        stage=stage,
        created_at=now if replacing is None else replacing.created_at,
        last_seen_at=now,
        reauth_at=now if stage == ACTIVE else None,
    )
    session.add(row)
    await session.flush()
    return Started(token, row)


async def find_session(
    session: AsyncSession, hasher: SecretHasher, token: str | None
) -> tuple[MemberSession, Member] | None:
    if not token or len(token) > 100:
        return None
    query = (
        select(MemberSession, Member)
        .join(Member, Member.id == MemberSession.member_id)
        .where(MemberSession.id_hash == session_hash(hasher, token))
    )
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1])


def expired(row: MemberSession, now: datetime, settings: Settings) -> bool:
    """Idle for 15 minutes, older than 8 hours, or a code step left waiting too long (S6)."""
    idle = now - as_utc(row.last_seen_at) >= timedelta(seconds=settings.dashboard_idle_seconds)
    age = now - as_utc(row.created_at)
    if row.stage == CODE:
        return idle or age >= CODE_STEP_LIFETIME
    return idle or age >= timedelta(seconds=settings.dashboard_absolute_seconds)


def reauth_fresh(row: MemberSession, now: datetime, settings: Settings) -> bool:
    if row.reauth_at is None:
        return False
    return now - as_utc(row.reauth_at) < timedelta(seconds=settings.dashboard_reauth_seconds)


async def end_session(session: AsyncSession, row: MemberSession) -> None:
    """Deletes the session row (``row`` may come from another unit of work)."""
    await session.execute(delete(MemberSession).where(MemberSession.id == row.id))


async def end_sessions_of(session: AsyncSession, member_id: int) -> None:
    await session.execute(delete(MemberSession).where(MemberSession.member_id == member_id))


# --- invitations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedInvite:
    invite: Invite
    token: str


#: ``Invite.invited_by`` of the first owner's link (``bankhub team bootstrap``)
BOOTSTRAP_ACTOR = "operator:bootstrap"
#: how long a bootstrap link works unless the operator says otherwise
BOOTSTRAP_LIFETIME = timedelta(hours=1)
#: the longest a bootstrap link may work
BOOTSTRAP_MAX_LIFETIME = timedelta(hours=24)


def is_bootstrap(row: Invite) -> bool:
    return row.invited_by == BOOTSTRAP_ACTOR


async def invite(
    session: AsyncSession,
    hasher: SecretHasher,
    now: datetime,
    email: str,
    role: Role,
    invited_by: str,
    settings: Settings,
    *,
    lifetime: timedelta | None = None,
    action: str = "member.invited",
) -> IssuedInvite:
    """A single-use invitation link for ``email``; earlier open invitations for it are dropped.
    ``lifetime``: how long it works (``BANKHUB_DASHBOARD_INVITE_DAYS`` unless given)."""
    address = normalise_email(email)
    if await member_by_email(session, address) is not None:
        raise FormError("There is already a member with this email.", "email")
    await session.execute(
        delete(Invite).where(Invite.email == address, Invite.accepted_at.is_(None))
    )
    token = secrets.token_urlsafe(32)
    row = Invite(
        token_hash=hasher.hash(token, purpose=INVITE_PURPOSE),
        email=address,
        role=role.value,
        invited_by=invited_by[:260],
        created_at=now,
        expires_at=now + (lifetime or timedelta(days=settings.dashboard_invite_days)),
    )
    session.add(row)
    await session.flush()
    audit.record(
        session,
        now=now,
        actor=invited_by,
        action=action,
        target_type="invite",
        target_id=row.id,
        detail={"email": address, "role": role.value, "expires_at": row.expires_at.isoformat()},
    )
    return IssuedInvite(row, token)


async def bootstrap(
    session: AsyncSession,
    hasher: SecretHasher,
    now: datetime,
    email: str,
    settings: Settings,
    lifetime: timedelta = BOOTSTRAP_LIFETIME,
) -> IssuedInvite:
    """The single-use link that makes ``email`` the first owner, while the team has no member.

    Outside dev it is the only way to the first owner: the open sign-up page would make whoever
    reaches a fresh server first its owner. Only the newest link works; accepting one checks
    again, under the first-owner lock, that the team is still empty.
    """
    if not timedelta(minutes=1) <= lifetime <= BOOTSTRAP_MAX_LIFETIME:
        raise FormError("A bootstrap link works for 1 minute to 24 hours.")
    await lock_first_owner(session)
    if await count_members(session):
        raise FormError(
            "The team has members already: invite with `bankhub team invite EMAIL --role owner`."
        )
    await session.execute(
        delete(Invite).where(Invite.invited_by == BOOTSTRAP_ACTOR, Invite.accepted_at.is_(None))
    )
    return await invite(
        session,
        hasher,
        now,
        email,
        Role.OWNER,
        BOOTSTRAP_ACTOR,
        settings,
        lifetime=lifetime,
        action="member.bootstrap_link",
    )


async def open_invite(
    session: AsyncSession, hasher: SecretHasher, token: str, now: datetime
) -> Invite | None:
    """The invitation a link's token names, if it is unused and unexpired."""
    if not token or len(token) > 100:
        return None
    query = select(Invite).where(Invite.token_hash == hasher.hash(token, purpose=INVITE_PURPOSE))
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None or row.accepted_at is not None or as_utc(row.expires_at) <= now:
        return None
    return row


async def open_invites(session: AsyncSession, now: datetime) -> list[Invite]:
    query = (
        select(Invite)
        .where(Invite.accepted_at.is_(None), Invite.expires_at > now)
        .order_by(Invite.id)
    )
    return list((await session.execute(query)).scalars())
