"""Who may do what: the one role × action table of the dashboard.

Every dashboard route declares the action it performs (``opt={"scope": "dashboard",
"action": ...}``); the router's guard refuses a route that declares none, and refuses a member
whose role the table below does not allow (403). Templates ask the same table whether to show a
button, so what a page offers and what the server accepts cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from bankhub.security import scopes


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"


class Action(StrEnum):
    #: no session needed: sign-in, first-owner sign-up, accepting an invitation, the stylesheet
    PUBLIC = "public"
    #: password accepted, the TOTP code still to come
    SIGN_IN_CODE = "sign-in-code"
    #: signed in but TOTP not yet set up
    ENROL = "enrol"
    #: the member's own session: sign out, re-authenticate
    ACCOUNT = "account"
    #: read-only pages: overview, apps and their keys (never secrets), team list, API reference
    VIEW = "view"
    APP_CREATE = "app.create"
    #: rename an app, archive it (its keys are refused) and restore it
    APP_MANAGE = "app.manage"
    #: create, roll and revoke API keys
    KEYS_MANAGE = "keys.manage"
    #: IP allow-list, referers of app keys, frame origins, retention window
    APP_SETTINGS = "app.settings"
    #: sandbox, live or both: which services of the catalogue the app may connect
    APP_MODE = "app.mode"
    #: the connect page's branding (App Templates): name, logo, colours, texts
    APP_TEMPLATE = "app.template"
    #: end an OAuth grant (a token family: its refresh token and every access token from it)
    OAUTH_REVOKE = "oauth.revoke"
    #: add webhook endpoints, rotate their signing secrets
    WEBHOOKS_MANAGE = "webhooks.manage"
    #: send one event again to the app's endpoints, or a test event to one
    EVENTS_REPLAY = "events.replay"
    #: refresh a login now (as ``PUT /v2/login/refresh``, its limits included)
    LOGINS_REFRESH = "logins.refresh"
    #: revoke a login, erase a customer (Consent Control)
    CONSENT_MANAGE = "consent.manage"
    TEAM_INVITE = "team.invite"
    TEAM_REMOVE = "team.remove"
    #: change a member's role (within what ``may_manage`` allows; the last owner stays one)
    TEAM_ROLE = "team.role"
    SMTP_MANAGE = "smtp.manage"
    AUDIT_VIEW = "audit.view"
    #: a payment's creditor accounts in full and its remittance text (others see them masked)
    PAYMENTS_DETAILS = "payments.details"
    #: start a test payment on a sandbox app
    PAYMENTS_TEST = "payments.test"
    #: switch payment initiation on or off and set the daily limits
    PAYMENTS_SWITCH = "payments.switch"
    #: run the connect page against a sandbox bank from the Bank Feed
    CONNECT_TEST = "connect.test"


_ALL = frozenset(Role)
_STAFF = frozenset({Role.OWNER, Role.ADMIN})
_BUILDERS = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})
_OWNER = frozenset({Role.OWNER})

#: the matrix: action → the roles that may perform it
MATRIX: dict[Action, frozenset[Role]] = {
    Action.PUBLIC: _ALL,
    Action.SIGN_IN_CODE: _ALL,
    Action.ENROL: _ALL,
    Action.ACCOUNT: _ALL,
    Action.VIEW: _ALL,
    Action.APP_CREATE: _BUILDERS,
    Action.APP_MANAGE: _STAFF,
    Action.KEYS_MANAGE: _BUILDERS,
    Action.APP_SETTINGS: _STAFF,
    Action.APP_MODE: _STAFF,
    Action.APP_TEMPLATE: _BUILDERS,
    Action.OAUTH_REVOKE: _BUILDERS,
    Action.WEBHOOKS_MANAGE: _BUILDERS,
    Action.EVENTS_REPLAY: _BUILDERS,
    Action.LOGINS_REFRESH: _BUILDERS,
    Action.CONSENT_MANAGE: _STAFF,
    Action.TEAM_INVITE: _STAFF,
    Action.TEAM_REMOVE: _STAFF,
    Action.TEAM_ROLE: _STAFF,
    Action.SMTP_MANAGE: _STAFF,
    Action.AUDIT_VIEW: _BUILDERS,
    Action.PAYMENTS_DETAILS: _BUILDERS,
    Action.PAYMENTS_TEST: _BUILDERS,
    # moving money is the owner's decision, as the API's master credential is the owner's
    Action.PAYMENTS_SWITCH: _OWNER,
    Action.CONNECT_TEST: _BUILDERS,
}

#: S7: actions that need the password and a code given within the re-authentication window.
#: Erasing a customer or a login, and removing a member, cannot be undone: they need it too.
REAUTH: frozenset[Action] = frozenset(
    {
        Action.KEYS_MANAGE,
        Action.APP_MANAGE,
        Action.CONSENT_MANAGE,
        Action.TEAM_REMOVE,
        Action.APP_SETTINGS,
        Action.APP_MODE,
        Action.WEBHOOKS_MANAGE,
        Action.OAUTH_REVOKE,
        Action.PAYMENTS_SWITCH,
        # a role is access to every app's keys and data
        Action.TEAM_ROLE,
    }
)

#: actions taken without a full session
SESSIONLESS = frozenset({Action.PUBLIC})
PARTIAL = {Action.SIGN_IN_CODE: "code", Action.ENROL: "enrol"}


def allows(role: str | Role, action: Action) -> bool:
    try:
        return Role(role) in MATRIX[action]
    except ValueError:
        return False


def may_manage(actor: str | Role, target: str | Role) -> bool:
    """Whom a member may invite or remove: an owner anyone, an admin anyone but an owner."""
    try:
        actor_role, target_role = Role(actor), Role(target)
    except ValueError:
        return False
    if actor_role is Role.OWNER:
        return True
    return actor_role is Role.ADMIN and target_role is not Role.OWNER


def declared(opt: dict[str, Any]) -> Action | None:
    value = opt.get("action")
    if opt.get("scope") != scopes.DASHBOARD or not isinstance(value, str):
        return None
    try:
        return Action(value)
    except ValueError:
        return None


def route(action: Action) -> dict[str, Any]:
    """A dashboard route's ``opt``: the ``dashboard`` scope and the action it performs."""
    return {"scope": scopes.DASHBOARD, "action": action.value}
