"""The team beyond joining and leaving: members' roles, open invitations revoked or sent again;
one's own account: password, new recovery codes, and a new authenticator after a lost one.

The same pattern as ``routes``: each handler declares its action, forms are posted, checked and
answered with a redirect, also where a secret is shown once: new recovery codes and an
invitation link without mail wait, sealed, for the one page that shows them
(``routes.keep_recovery_codes``, ``routes.show_invitation``), so that a reload can neither make
another set of codes nor invite again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.principal import HubDep, public_url
from bankhub.dashboard import account, mail, roles, services
from bankhub.dashboard.models import Invite, Member
from bankhub.dashboard.pages import (
    PREFIX,
    SIGN_IN,
    Refused,
    field_of,
    forget_session,
    go,
    member_of,
    page,
    visit_of,
)
from bankhub.dashboard.roles import Action, Role
from bankhub.dashboard.routes import (
    _enter,
    _team_page,
    invite_link,
    keep_recovery_codes,
    show_invitation,
)
from bankhub.dashboard.services import FormError, SignInRefused
from bankhub.security import tls

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]
TEAM = f"{PREFIX}/team"
ACCOUNT = f"{PREFIX}/account"
RECOVER = f"{SIGN_IN}/recover"
DONE = {
    "password-changed": "Your password was changed. Your other sessions were signed out.",
}
GONE = "This invitation was used, revoked or has expired."


def _blocked(request: AnyRequest, member: Member) -> Response[Any]:
    """The last failure blocked the member and ended their sessions: the sign-in page, with
    the one message every refusal gets (S5)."""
    forget_session(request)
    notice = services.REFUSED
    return page(request, "sign_in.html", first=False, email=member.email, notice=notice)


# --- roles and invitations ----------------------------------------------------------------------


@post(f"{TEAM}/{{member_id:int}}/role", opt=roles.route(Action.TEAM_ROLE), include_in_schema=False)
async def change_role(
    hub: HubDep, request: AnyRequest, member_id: FromPath[int], data: Form
) -> Response[Any]:
    """A member's new role: an owner sets any, an admin any but owner and never an owner's."""
    me = member_of(request)
    try:
        role = Role(field_of(data, "role"))
    except ValueError:
        return await _team_page(request, notice="Choose a role.", status=400)
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            target = await db.get(Member, member_id)
            actor = await db.get(Member, me.id)
            if target is None or actor is None:
                raise Refused(404, "No such member.")
            if not (
                roles.may_manage(actor.role, target.role) and roles.may_manage(actor.role, role)
            ):
                raise Refused(403, "Your role cannot give this member this role.")
            changed = await account.change_role(db, actor, target, role, now)
    except FormError as exc:
        return await _team_page(request, notice=str(exc), status=409)
    return go(request, f"{TEAM}?done=role-changed" if changed else TEAM)


async def _open_invite(
    request: AnyRequest, db: AsyncSession, invite_id: int, now: datetime
) -> Invite:
    me = member_of(request)
    found = await account.invite_by_id(db, invite_id, now)
    if found is None:
        raise Refused(404, GONE)
    if not roles.may_manage(me.role, found.role):
        raise Refused(403, "Your role cannot manage an invitation with this role.")
    return found


@post(
    f"{TEAM}/invites/{{invite_id:int}}/revoke",
    opt=roles.route(Action.TEAM_INVITE),
    include_in_schema=False,
)
async def revoke_invite(
    hub: HubDep, request: AnyRequest, invite_id: FromPath[int]
) -> Response[Any]:
    """The link stops working at once; the address can be invited again later."""
    now = hub.clock()
    async with hub.db.transaction() as db:
        found = await _open_invite(request, db, invite_id, now)
        await account.revoke_invite(db, member_of(request), found, now)
    return go(request, f"{TEAM}?done=invite-revoked")


@post(
    f"{TEAM}/invites/{{invite_id:int}}/resend",
    opt=roles.route(Action.TEAM_INVITE),
    include_in_schema=False,
)
async def resend_invite(
    hub: HubDep, request: AnyRequest, invite_id: FromPath[int]
) -> Response[Any]:
    """A new link for the same address and role, with a new expiry; the old link stops
    working. Mailed when outgoing mail is set up, else shown once here."""
    me = member_of(request)
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            found = await _open_invite(request, db, invite_id, now)
            role = Role(found.role)
            issued = await services.invite(
                db,
                hub.hasher,
                now,
                found.email,
                role,
                services.member_actor(me),
                hub.settings,
                action="member.invite_resent",
            )
            config = await mail.load(db, hub.keyring)
    except FormError as exc:  # they joined meanwhile
        return await _team_page(request, notice=str(exc), status=409)
    link = invite_link(public_url(hub, request), issued.token)
    email = issued.invite.email
    if config is None:
        note = f"A new invitation link for {email} (the old one no longer works). Outgoing "
        note += "mail is not set up: send this link to them yourself."
        return await show_invitation(hub, request, note, link)
    try:
        message = mail.invite_mail(config, email, link, role.value, me.email)
        await mail.send(config, message, tls.outbound_ssl_context(hub.settings.ca_bundle))
    except mail.MailError as exc:
        note = f"The new invitation could not be mailed ({exc}); send this link yourself."
        return await show_invitation(hub, request, note, link)
    return go(request, f"{TEAM}?done=invite-resent")


# --- one's own account --------------------------------------------------------------------------


async def _account_page(
    request: AnyRequest, *, notice: str | None = None, status: int = 200
) -> Response[Any]:
    me = member_of(request)
    return page(
        request,
        "account.html",
        codes_left=len(me.recovery_hashes or []),
        notice=notice,
        done=DONE.get(request.query_params.get("done", "")),
        status=status,
    )


@get(ACCOUNT, opt=roles.route(Action.ACCOUNT), include_in_schema=False)
async def account_page(request: AnyRequest) -> Response[Any]:
    return await _account_page(request)


async def _signed_in(db: AsyncSession, request: AnyRequest) -> Member:
    member = await db.get(Member, member_of(request).id)
    if member is None:
        raise Refused(401, "Please sign in again.")
    return member


async def _refusal(db: AsyncSession, member: Member, now: datetime, exc: Exception) -> str:
    """The refusal's message; a refusal that locked the member ends every session of theirs."""
    if services.is_locked(member, now):
        await services.end_sessions_of(db, member.id)
    return str(exc)


@post(f"{ACCOUNT}/password", opt=roles.route(Action.ACCOUNT), include_in_schema=False)
async def change_password(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """The current password, then the new one twice; every other session is signed out."""
    visit = visit_of(request)
    now = hub.clock()
    keep = visit.session.id if visit.session is not None else None
    async with hub.db.transaction() as db:
        member = await _signed_in(db, request)
        try:
            await account.change_password(
                db,
                member,
                current=field_of(data, "current"),
                new=field_of(data, "password"),
                again=field_of(data, "password2"),
                now=now,
                settings=hub.settings,
                keep_session=keep,
            )
        except FormError as exc:
            refused = await _refusal(db, member, now, exc)
        else:
            refused = ""
    if refused and services.is_locked(member, now):
        return _blocked(request, member)
    if refused:
        return await _account_page(request, notice=refused, status=400)
    return go(request, f"{ACCOUNT}?done=password-changed")


@post(f"{ACCOUNT}/recovery-codes", opt=roles.route(Action.ACCOUNT), include_in_schema=False)
async def renew_recovery_codes(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """New recovery codes, shown once on the page it leads to; the old ones stop working."""
    session = visit_of(request).session
    if session is None:  # the guard lets no member's page through without one
        raise Refused(401, "Please sign in.")
    now = hub.clock()
    shown = ""
    async with hub.db.transaction() as db:
        member = await _signed_in(db, request)
        try:
            codes = account.renew_recovery_codes(
                db, hub.keyring, hub.hasher, member, field_of(data, "code"), now, hub.settings
            )
        except FormError as exc:
            refused = await _refusal(db, member, now, exc)
        else:
            refused = ""
            shown = await keep_recovery_codes(db, hub, session.id, codes, renewed=True)
    if refused and services.is_locked(member, now):
        return _blocked(request, member)
    if refused:
        return await _account_page(request, notice=refused, status=400)
    return go(request, shown)


# --- a lost authenticator -----------------------------------------------------------------------


@get(RECOVER, opt=roles.route(Action.SIGN_IN_CODE), include_in_schema=False)
async def recover_page(request: AnyRequest) -> Response[Any]:
    return page(request, "recover.html")


@post(RECOVER, opt=roles.route(Action.SIGN_IN_CODE), include_in_schema=False)
async def recover(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """After the password: a recovery code instead of the lost app's code, then the set-up of
    a new authenticator (the old one works until the new one is confirmed)."""
    visit = visit_of(request)
    now = hub.clock()
    async with hub.db.transaction() as db:
        member = await db.get(Member, member_of(request).id)
        if member is None or visit.session is None:
            raise Refused(401, "Please sign in again.")
        try:
            account.start_reset(
                db, hub.keyring, hub.hasher, member, field_of(data, "code"), now, hub.settings
            )
        except SignInRefused as exc:
            refused = await _refusal(db, member, now, exc)
        else:
            refused = ""
            started = await services.start_session(
                db, hub.hasher, member, services.ENROL, now, replacing=visit.session
            )
    if refused and services.is_locked(member, now):
        return _blocked(request, member)
    if refused:
        return page(request, "recover.html", notice=refused)
    return _enter(request, hub, started.token, f"{PREFIX}/enrol")


TEAM_ROUTES = [
    change_role,
    revoke_invite,
    resend_invite,
    account_page,
    change_password,
    renew_recovery_codes,
    recover_page,
    recover,
]
