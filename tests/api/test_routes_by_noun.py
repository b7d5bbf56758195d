"""A newcomer finds an endpoint by its noun: every ``/v2`` route lives in the module named for it.

``DELETE /v2/customer`` is in ``bankhub/customers/routes.py``; ``/v2/transaction`` and
``/v2/transaction/sync`` both in ``bankhub/accounts/transaction_routes.py``. A route added
elsewhere, or a noun with no module of its own, fails here (and ``bankhub.api.router``'s table
says the same to a reader).
"""

from __future__ import annotations

from litestar.handlers import HTTPRouteHandler

from bankhub.api.router import ROUTES

#: each noun of the API (the path's segment after /v2) and the module its routes live in
HOME = {
    "account": "bankhub.accounts.routes",
    "app": "bankhub.partners.routes",
    "connect": "bankhub.connect.routes",
    "customer": "bankhub.customers.routes",
    "event": "bankhub.events.routes",
    "keys": "bankhub.partners.key_routes",
    "login": "bankhub.logins.routes",
    "payment": "bankhub.payments.routes",
    "service": "bankhub.catalogue.routes",
    "signature": "bankhub.signatures.routes",
    "statement": "bankhub.statements.routes",
    "token": "bankhub.logins.token_routes",
    "transaction": "bankhub.accounts.transaction_routes",
    "webhook": "bankhub.webhooks.routes",
}


def _v2_routes() -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for handler in ROUTES:
        assert isinstance(handler, HTTPRouteHandler)
        for path in handler.paths:
            if path.startswith("/v2/"):
                for method in sorted(handler.http_methods):
                    found.append((method, path, handler.fn.__module__))
    return found


def test_every_v2_route_lives_in_the_module_of_its_noun() -> None:
    routes = _v2_routes()
    assert {path.split("/")[2] for _, path, _ in routes} == set(HOME)
    misplaced = [
        f"{method} {path} is in {module}, not {HOME[path.split('/')[2]]}"
        for method, path, module in routes
        if module != HOME[path.split("/")[2]]
    ]
    assert misplaced == []


def test_a_module_is_named_for_its_noun() -> None:
    """``<package>/routes.py`` when the package is the noun's, else ``<noun>_routes.py``."""
    for noun, module in HOME.items():
        package, name = module.split(".")[1:]
        if name == "routes":
            assert package.rstrip("s").startswith(noun.rstrip("s")) or (noun, package) in {
                ("app", "partners"),
                ("service", "catalogue"),
            }, module
        else:
            assert name == f"{noun.rstrip('s')}_routes", module
