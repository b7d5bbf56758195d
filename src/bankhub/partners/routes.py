"""The app's own settings: retention window, credential vault, IP allow-list, frame origins,
categorization rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Request, get, put
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.openapi import APP_AUTH, APP_SECURITY, errors
from bankhub.api.principal import AuthDep, HubDep
from bankhub.api.schemas import VERSION, wire_time
from bankhub.audit import services as audit
from bankhub.categories import AppRule
from bankhub.clock import as_utc
from bankhub.errors import DomainError, ErrorCode
from bankhub.partners import services as partners
from bankhub.partners.models import App
from bankhub.security import scopes

AnyRequest = Request[Any, Any, Any]
T = TypeVar("T")

ChosenBy = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
RetentionHours = Annotated[
    int, msgspec.Meta(ge=partners.MIN_RETENTION_HOURS, le=partners.MAX_RETENTION_HOURS)
]


class RetentionIn(msgspec.Struct, forbid_unknown_fields=True):
    hours: RetentionHours
    chosen_by: ChosenBy


class CredentialVaultIn(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool
    chosen_by: ChosenBy


Cidr = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Origin = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class IpAllowlistIn(msgspec.Struct, forbid_unknown_fields=True):
    cidrs: Annotated[list[Cidr], msgspec.Meta(max_length=100)] | None
    chosen_by: ChosenBy


class FrameOriginsIn(msgspec.Struct, forbid_unknown_fields=True):
    origins: Annotated[list[Origin], msgspec.Meta(max_length=20)] | None
    chosen_by: ChosenBy


CategoryName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Keyword = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CategoryRuleIn(msgspec.Struct, forbid_unknown_fields=True):
    category: CategoryName
    keyword: Keyword
    sign: Literal["credit", "debit", "any"] = "any"


class CategoryRulesIn(msgspec.Struct, forbid_unknown_fields=True):
    rules: Annotated[list[CategoryRuleIn], msgspec.Meta(max_length=partners.MAX_CATEGORY_RULES)]
    chosen_by: ChosenBy


class CategoryRulesOut(msgspec.Struct):
    client_id: str
    rules: list[CategoryRuleIn]


class CategoryRulesEnvelope(msgspec.Struct):
    data: CategoryRulesOut
    version: str = VERSION


class AppOut(msgspec.Struct):
    client_id: str
    name: str
    retention_hours: int
    retention_set_by: str | None
    retention_set_at: str | None
    credential_vault: bool
    credential_vault_set_by: str | None
    credential_vault_set_at: str | None


class AppEnvelope(msgspec.Struct):
    data: AppOut
    version: str = VERSION


async def _strict(request: AnyRequest, model: type[T]) -> T:
    """The body again, without the lax coercions (``"48"`` → 48, ``1`` → true) of the framework:
    a setting that is audited is taken only as the exact type."""
    try:
        return msgspec.json.decode(await request.body(), type=model, strict=True)
    except msgspec.ValidationError as exc:
        raise DomainError(ErrorCode.DATA_INVALID, str(exc), {"problems": [str(exc)]}) from None


class IpAllowlistOut(msgspec.Struct):
    client_id: str
    cidrs: list[str] | None


class IpAllowlistEnvelope(msgspec.Struct):
    data: IpAllowlistOut
    version: str = VERSION


class FrameOriginsOut(msgspec.Struct):
    client_id: str
    origins: list[str] | None


class FrameOriginsEnvelope(msgspec.Struct):
    data: FrameOriginsOut
    version: str = VERSION


Who = dict[str, Any]


async def _apply_setting(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    model: type[T],
    write: Callable[[AsyncSession, App, T, Who], Awaitable[object]],
) -> App:
    """Authenticate, read the body strictly as ``model``, and let ``write`` record the setting
    with who chose it and when (``now``, ``actor``, ``request_id``), in one unit of work."""
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        data = await _strict(request, model)
        who: Who = {
            "now": hub.clock(),
            "actor": audit.app_actor(app),
            "request_id": audit.request_id(),
        }
        await write(session, app, data, who)
    return app


def _app_out(app: App) -> AppEnvelope:
    return AppEnvelope(
        AppOut(
            client_id=app.client_id,
            name=app.name,
            retention_hours=app.retention_hours,
            retention_set_by=app.retention_set_by,
            retention_set_at=wire_time(as_utc(app.retention_set_at))
            if app.retention_set_at
            else None,
            credential_vault=bool(app.credential_vault),
            credential_vault_set_by=app.credential_vault_set_by,
            credential_vault_set_at=wire_time(as_utc(app.credential_vault_set_at))
            if app.credential_vault_set_at
            else None,
        )
    )


@get(
    "/v2/app",
    opt=scopes.read(),
    tags=["app"],
    summary="The app's own settings",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
)
async def read_app(hub: HubDep, auth: AuthDep, request: AnyRequest) -> AppEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        return _app_out(app)


@put(
    "/v2/app/retention",
    opt=scopes.master(),
    tags=["app"],
    summary="Choose how long fetched financial data is kept",
    description=(
        "Transactions not fetched again within `hours` (1 to 8760; 24 by default) are purged, "
        "with a `removed` entry in the change log. `chosen_by` names the person or system that "
        "chose; it is recorded with the time and audited."
    ),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def set_retention(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[RetentionIn]
) -> AppEnvelope:
    app = await _apply_setting(
        hub,
        auth,
        request,
        RetentionIn,
        lambda session, app, data, who: partners.set_retention(
            session, app, data.hours, data.chosen_by, **who
        ),
    )
    return _app_out(app)


@put(
    "/v2/app/credential-vault",
    opt=scopes.master(),
    tags=["app"],
    summary="Opt in or out of keeping bank credentials for unattended refreshes",
    description="Records the choice, who made it (`chosen_by`) and when; audited.",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def set_credential_vault(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[CredentialVaultIn]
) -> AppEnvelope:
    app = await _apply_setting(
        hub,
        auth,
        request,
        CredentialVaultIn,
        lambda session, app, data, who: partners.set_credential_vault(
            session, app, data.enabled, data.chosen_by, **who
        ),
    )
    return _app_out(app)


@put(
    "/v2/app/ip-allowlist",
    opt=scopes.master(),
    tags=["app"],
    summary="Limit the addresses the app's API calls may come from",
    description=(
        "`cidrs` lists IPv4/IPv6 addresses or CIDR ranges (at most 100); `null` allows any "
        "address. Calls from elsewhere get 403 `AddressNotAllowed`; the connect page is not "
        "affected. `chosen_by` names who chose; audited."
    ),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def set_ip_allowlist(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[IpAllowlistIn]
) -> IpAllowlistEnvelope:
    app = await _apply_setting(
        hub,
        auth,
        request,
        IpAllowlistIn,
        lambda session, app, data, who: partners.set_ip_allowlist(
            session, app, data.cidrs, data.chosen_by, **who
        ),
    )
    return IpAllowlistEnvelope(IpAllowlistOut(app.client_id, app.ip_allowlist))


@put(
    "/v2/app/frame-origins",
    opt=scopes.master(),
    tags=["app"],
    summary="Choose the sites that may embed the connect page in a frame",
    description=(
        "`origins` lists `https://host[:port]` or `https://*.host` (at most 20); `null` or `[]` "
        "lets no site frame it (the default). `chosen_by` names who chose; audited."
    ),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def set_frame_origins(
    auth: AuthDep, hub: HubDep, request: AnyRequest, data: JSONBody[FrameOriginsIn]
) -> FrameOriginsEnvelope:
    allow_http = hub.settings.is_dev
    app = await _apply_setting(
        hub,
        auth,
        request,
        FrameOriginsIn,
        lambda session, app, data, who: partners.set_frame_origins(
            session, app, data.origins, data.chosen_by, allow_http=allow_http, **who
        ),
    )
    return FrameOriginsEnvelope(FrameOriginsOut(app.client_id, app.frame_origins))


def _rules_out(app: App) -> CategoryRulesEnvelope:
    rules = [CategoryRuleIn(**rule) for rule in app.category_rules or []]  # type: ignore[arg-type]
    return CategoryRulesEnvelope(CategoryRulesOut(app.client_id, rules))


@get(
    "/v2/app/category-rules",
    opt=scopes.read(),
    tags=["app"],
    summary="The app's own categorization rules",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
)
async def read_category_rules(
    hub: HubDep, auth: AuthDep, request: AnyRequest
) -> CategoryRulesEnvelope:
    async with hub.db.transaction() as session:
        return _rules_out(await auth.app(session))


@put(
    "/v2/app/category-rules",
    opt=scopes.master(),
    tags=["app"],
    summary="Set the app's own categorization rules, which win over bankhub's",
    description=(
        "`rules` (at most 200, in priority order) replaces the app's rules; `[]` removes them. "
        "A transaction stored from now on whose merchant, counterparty or description holds "
        "a rule's `keyword` (a word or phrase; `word*` for words that start with it, `*word` "
        "for words that end with it; case and accents do not matter) and whose amount has the "
        "rule's `sign` (`credit`, `debit` or `any`) gets the rule's `category`, one of the "
        "`category` values of `GET /v2/transaction` (not `uncategorized`). `chosen_by` names "
        "who chose; audited."
    ),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def set_category_rules(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[CategoryRulesIn]
) -> CategoryRulesEnvelope:
    app = await _apply_setting(
        hub,
        auth,
        request,
        CategoryRulesIn,
        lambda session, app, data, who: partners.set_category_rules(
            session,
            app,
            [AppRule(r.category, r.keyword, r.sign) for r in data.rules],
            data.chosen_by,
            **who,
        ),
    )
    return _rules_out(app)


APP_ROUTES: list[ControllerRouterHandler] = [
    read_app,
    set_retention,
    set_credential_vault,
    set_ip_allowlist,
    set_frame_origins,
    read_category_rules,
    set_category_rules,
]
