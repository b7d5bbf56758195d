"""The API's routes, assembled: each noun's routes live in its own package.

A newcomer looking for an endpoint opens the package named after its noun:

==============================================  ==========================================
``/v2/service``, ``/service.json``, media         ``bankhub.catalogue.routes``
``/v2/customer``, ``/v2/customer/export``         ``bankhub.customers.routes``
``/v2/token``, ``/v2/token/reconnect``            ``bankhub.logins.token_routes``
``/v2/login``, ``/v2/login/*``                    ``bankhub.logins.routes``
``/v2/account``                                   ``bankhub.accounts.routes``
``/v2/transaction``, ``/v2/transaction/sync``     ``bankhub.accounts.transaction_routes``
``/v2/statement``                                 ``bankhub.statements.routes``
``/v2/payment``, ``/v2/payment/*``                ``bankhub.payments.routes``
``/v2/event``, ``/v2/event/*``                    ``bankhub.events.routes``
``/v2/webhook``, ``/v2/webhook/*``                ``bankhub.webhooks.routes``
``/v2/app``, ``/v2/app/*``                        ``bankhub.partners.routes``
``/v2/keys``, ``/v2/keys/*``                      ``bankhub.partners.key_routes``
``/v2/signature/key``, ``/v2/signature/key/*``    ``bankhub.signatures.routes``
``/oauth/*``, ``/.well-known/*``                  ``bankhub.oauth.routes``
``/v2/connect/*`` (the hosted pages)              ``bankhub.connect.routes``
``/healthz``                                      ``bankhub.api.health``
==============================================  ==========================================

No route module imports another (``[tool.importlinter]`` in pyproject.toml checks it). What the
routes share lives here in ``bankhub.api``: the dependencies every route may ask for
(``principal``), the authentication and scope guard (``auth``), the error envelope (``errors``,
``handlers``), the OpenAPI description (``openapi``) and the wire's common shapes (``schemas``).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.types import ControllerRouterHandler

from bankhub.accounts.routes import ACCOUNT_ROUTES
from bankhub.accounts.transaction_routes import TRANSACTION_ROUTES
from bankhub.api import idempotency
from bankhub.api.openapi import finish
from bankhub.catalogue.routes import CATALOGUE_ROUTES
from bankhub.connect.routes import CONNECT_ROUTES
from bankhub.customers.routes import CUSTOMER_ROUTES
from bankhub.events.routes import EVENT_ROUTES
from bankhub.logins.routes import LOGIN_ROUTES
from bankhub.logins.token_routes import TOKEN_ROUTES
from bankhub.oauth.routes import OAUTH_ROUTES
from bankhub.operations.routes import OPERATION_ROUTES
from bankhub.partners.key_routes import KEY_ROUTES
from bankhub.partners.routes import APP_ROUTES
from bankhub.payments.routes import PAYMENT_ROUTES
from bankhub.signatures.routes import SIGNATURE_ROUTES
from bankhub.statements.routes import STATEMENT_ROUTES
from bankhub.webhooks.routes import WEBHOOK_ROUTES

#: every route of the API and the connect pages, by noun
ROUTES: list[ControllerRouterHandler] = [
    *CATALOGUE_ROUTES,
    *OPERATION_ROUTES,
    *CUSTOMER_ROUTES,
    *TOKEN_ROUTES,
    *LOGIN_ROUTES,
    *ACCOUNT_ROUTES,
    *TRANSACTION_ROUTES,
    *STATEMENT_ROUTES,
    *PAYMENT_ROUTES,
    *EVENT_ROUTES,
    *WEBHOOK_ROUTES,
    *APP_ROUTES,
    *KEY_ROUTES,
    *SIGNATURE_ROUTES,
    *OAUTH_ROUTES,
    *CONNECT_ROUTES,
]


@get("/openapi.json", include_in_schema=False, opt={"scope": "public"})
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    spec = idempotency.describe(finish(request.app.openapi_schema), request.app.routes)
    schema: dict[str, Any] = spec.to_schema()
    return schema
