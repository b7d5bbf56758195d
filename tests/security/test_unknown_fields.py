"""S16: a JSON body with a field the route does not know is refused with DataInvalid (400).

The routes come from ``/openapi.json``: every operation with a request body must have a valid
body below, so a new body route fails here until it is covered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.api.connect_client import connect, create_customer
from tests.conftest import Harness

CALLBACK = "https://partner.example/callback"


@dataclass
class BodyRoute:
    method: str
    path: str
    body: dict[str, Any]
    login_secret: str | None = None
    #: the path as the description writes it, when the route has path parameters
    template: str | None = None
    #: the route needs an ``Idempotency-Key`` (a fresh one is sent each time)
    keyed: bool = False

    def headers(self, h: Harness) -> dict[str, str]:
        headers = h.headers(login_secret=self.login_secret)
        if self.keyed:
            headers["idempotency-key"] = uuid.uuid4().hex
        return headers

    @property
    def label(self) -> str:
        return f"{self.method} {self.template or self.path}"


async def body_routes(h: Harness) -> list[BodyRoute]:
    """A valid body for every route that reads one, with the login it needs."""
    customer_id = await create_customer(h, "fields-check")
    payer = await create_customer(h, "fields-check-payer")  # the one above is erased first
    login = await connect(h, "user_good")
    made = await h.client.post("/v2/keys", headers=h.headers(), json={"scope": "read"})
    key_id = made.json()["data"]["key_id"]
    return [
        BodyRoute("POST", "/v2/customer", {"identifier": "another-customer"}),
        BodyRoute(
            "POST",
            "/v2/token",
            {"customer_id": customer_id, "service_id": 1, "callback_url": CALLBACK},
        ),
        BodyRoute("POST", "/v2/token/reconnect", {"callback_url": CALLBACK}, login["secret"]),
        BodyRoute("DELETE", "/v2/customer", {"customer_id": customer_id}),
        BodyRoute("PUT", "/v2/app/retention", {"hours": 48, "chosen_by": "ops@partner"}),
        BodyRoute("PUT", "/v2/app/credential-vault", {"enabled": False, "chosen_by": "ops"}),
        BodyRoute("PUT", "/v2/app/ip-allowlist", {"cidrs": None, "chosen_by": "ops"}),
        BodyRoute("PUT", "/v2/app/frame-origins", {"origins": None, "chosen_by": "ops"}),
        BodyRoute("PUT", "/v2/app/category-rules", {"rules": [], "chosen_by": "ops"}),
        BodyRoute("POST", "/v2/keys", {"scope": "read", "name": "checked"}),
        BodyRoute(
            "POST",
            f"/v2/keys/{key_id}/roll",
            {"overlap_seconds": 60},
            template="/v2/keys/{key_id}/roll",
        ),
        BodyRoute("PUT", "/v2/payment/settings", {"enabled": True, "chosen_by": "owner"}),
        BodyRoute("POST", "/v2/payment", {**payment, "customer_id": payer}, keyed=True),
        BodyRoute(
            "POST",
            "/v2/payment/batch",
            {
                "customer_id": payer,
                "service_id": 3,
                "callback_url": CALLBACK,
                "payments": [{k: v for k, v in payment.items() if k not in ROUTING}],
            },
            keyed=True,
        ),
        BodyRoute("POST", "/v2/signature/key", {"public_key": _public_key(), "label": "checked"}),
        # a source nobody serves (the discard port): stored, its first sync failed
        BodyRoute("POST", "/v2/signature/source", {"url": "http://127.0.0.1:9/checked.keys"}),
    ]


def _public_key() -> str:
    """A fresh Ed25519 public key as an OpenSSH line (a key may be registered once)."""
    return (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


ROUTING = ("customer_id", "service_id", "callback_url")
payment = {
    "service_id": 3,
    "callback_url": CALLBACK,
    "creditor_name": "Creditor",
    "creditor_iban": "DE89370400440532013000",
    "amount": "1.00",
    "currency": "EUR",
}


async def documented_body_routes(h: Harness) -> dict[str, dict[str, Any]]:
    """``METHOD path`` → the JSON schema of its body, from the served description."""
    spec = (await h.client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    found: dict[str, dict[str, Any]] = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            content = operation["requestBody"]["content"]
            if "application/json" not in content:
                continue  # the multipart statement upload: a file, not fields
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
            found[f"{method.upper()} {path}"] = schema
    return found


async def test_every_body_route_is_covered_and_says_it_refuses_unknown_fields(
    harness: Harness,
) -> None:
    documented = await documented_body_routes(harness)
    covered = {route.label for route in await body_routes(harness)}
    assert set(documented) == covered
    for label, schema in documented.items():
        assert schema.get("additionalProperties") is False, label


@pytest.mark.parametrize("extra", [{"admin": True}, {"identifier ": "x"}, {"": None}])
async def test_an_unknown_field_is_data_invalid(harness: Harness, extra: dict[str, Any]) -> None:
    h = harness
    for route in await body_routes(h):
        body = {**route.body, **extra}
        response = await h.client.request(
            route.method, route.path, json=body, headers=route.headers(h)
        )
        assert response.status_code == 400, (route.label, response.text)
        answer = response.json()
        assert answer["error"] == "DataInvalid", (route.label, answer)
        assert set(answer) == {"error", "message", "extra"}
        unknown = next(iter(extra))
        assert f"`{unknown}`" in answer["message"] or unknown in str(answer["extra"]), answer


async def test_the_same_bodies_without_the_unknown_field_pass(harness: Harness) -> None:
    """The control: the bodies above are valid, so DataInvalid really came from the field."""
    h = harness
    for route in await body_routes(h):
        response = await h.client.request(
            route.method, route.path, json=route.body, headers=route.headers(h)
        )
        assert response.status_code == 200, (route.label, response.text)
