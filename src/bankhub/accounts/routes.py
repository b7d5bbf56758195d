"""Accounts' routes: ``GET /v2/account``."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from bankhub.accounts import services as accounts
from bankhub.accounts.schemas import AccountListEnvelope, account_row_out
from bankhub.api.audit import account_data_read
from bankhub.api.openapi import LOGIN_AUTH, LOGIN_SECURITY, errors
from bankhub.api.principal import AuthDep, HubDep
from bankhub.audit import services as audit
from bankhub.logins import services as logins
from bankhub.security import scopes

AnyRequest = Request[Any, Any, Any]


@get(
    "/v2/account",
    opt=audit.account_data(scopes.read()),
    tags=["account"],
    summary="Accounts of the login named by login-secret",
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH),
)
async def list_accounts(hub: HubDep, auth: AuthDep, request: AnyRequest) -> AccountListEnvelope:
    async with hub.db.read() as session:
        login = await auth.login_view(session)
        logins.require_active(login)
        rows = await accounts.account_rows(session, login)
        account_data_read(
            request,
            resource="accounts",
            login_ids=[login.id],
            customer_id=login.customer_id,
            account_ids=[row[0] for row in rows],
            rows=len(rows),
            session=audit.read_unit(session),
        )
        return AccountListEnvelope([account_row_out(row, hub.keyring) for row in rows])


ACCOUNT_ROUTES = [list_accounts]
