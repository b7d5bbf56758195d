"""S34: wrong methods, wrong media types, page sizes and string lengths (413 is in
test_http_hygiene.py). Routes and bounds are read from ``/openapi.json`` where it has them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.connect_client import connect
from tests.conftest import Harness
from tests.security.test_unknown_fields import body_routes, documented_body_routes

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "extra"}, body
    assert body["error"] == code, body
    assert response.headers["content-type"].startswith("application/json")
    return body


async def test_a_method_a_route_does_not_have_is_405_in_the_envelope(harness: Harness) -> None:
    h = harness
    spec = (await h.client.get("/openapi.json")).json()
    checked = 0
    for path, item in spec["paths"].items():
        documented = {method.upper() for method in item if method.upper() in METHODS}
        concrete = path.replace("{event_id}", "1").replace("{name}", "x.png")
        for method in sorted(set(METHODS) - documented):
            response = await h.client.request(method, concrete, headers=h.headers())
            body = assert_envelope(response, 405, "MethodNotAllowed")
            assert method in body["message"], body
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert documented <= allowed, (path, allowed)
            checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("text/plain", b'{"identifier": "x"}'),
        ("application/x-www-form-urlencoded", b"identifier=x"),
        ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="a"'),
        ("application/xml", b"<identifier>x</identifier>"),
        ("", b'{"identifier": "x"}'),
    ],
)
async def test_a_body_that_is_not_json_is_content_input_invalid(
    harness: Harness, content_type: str, content: bytes
) -> None:
    h = harness
    for route in await body_routes(h):
        headers = {**h.headers(login_secret=route.login_secret), "content-type": content_type}
        response = await h.client.request(
            route.method, route.path, content=content, headers=headers
        )
        body = assert_envelope(response, 400, "ContentInputInvalid")
        assert body["message"] == "Only allow data type application/json"


#: page-size parameters, their caps, and the other query parameters each route needs
PAGE_SIZES = [
    ("/v2/transaction", "per_page", 1000, {}),
    ("/v2/transaction/sync", "count", 500, {"account_id": "1"}),
    ("/v2/event", "limit", 500, {}),
]


async def test_a_page_size_above_the_cap_is_refused_naming_the_cap(harness: Harness) -> None:
    """Refused (BadRequest), not capped: a partner asking for more must not silently get less."""
    h = harness
    login = await connect(h, "user_good")
    accounts = await h.client.get("/v2/account", headers=h.headers(login_secret=login["secret"]))
    account_id = str(accounts.json()["data"][0]["id"])
    spec = (await h.client.get("/openapi.json")).json()
    for path, name, cap, others in PAGE_SIZES:
        params = {**others, "account_id": account_id} if others else {}
        documented = next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name)
        assert cap in [s.get("maximum") for s in documented["schema"].get("oneOf", [])], documented
        headers = h.headers(login_secret=login["secret"])
        at_cap = await h.client.get(path, params={**params, name: str(cap)}, headers=headers)
        assert at_cap.status_code == 200, (path, at_cap.text)
        # '²' passes str.isdigit but not int(): it once crashed the page-size check with a 500
        for too_many in (str(cap + 1), "1000000", "99999999999999999999999", "²", "1e3"):
            response = await h.client.get(path, params={**params, name: too_many}, headers=headers)
            body = assert_envelope(response, 400, "BadRequest")
            assert name in body["message"], body
            assert str(cap) in body["message"], body


def _long_bodies(valid: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The valid body with one bounded string field one character too long, for each field."""
    bodies = []
    for field, prop in schema["properties"].items():
        if prop.get("type") == "string":
            assert "maxLength" in prop, f"{field} has no maxLength"
            bodies.append((field, {**valid, field: "x" * (prop["maxLength"] + 1)}))
    return bodies


async def test_a_string_over_its_documented_length_is_data_invalid(harness: Harness) -> None:
    h = harness
    documented = await documented_body_routes(h)
    checked = set()
    for route in await body_routes(h):
        for field, body in _long_bodies(route.body, documented[route.label]):
            response = await h.client.request(
                route.method,
                route.path,
                json=body,
                headers=h.headers(login_secret=route.login_secret),
            )
            answer = assert_envelope(response, 400, "DataInvalid")
            assert field in answer["message"], (route.label, answer)
            checked.add(f"{route.label} {field}")
    assert {
        "POST /v2/customer identifier",
        "POST /v2/token customer_id",
        "POST /v2/token callback_url",
        "POST /v2/token/reconnect callback_url",
        "DELETE /v2/customer customer_id",
        "PUT /v2/app/retention chosen_by",
        "PUT /v2/app/credential-vault chosen_by",
    } <= checked


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize("idempotent", [False, True])
async def test_deeply_nested_json_is_data_invalid(harness: Harness, idempotent: bool) -> None:
    """S34: a body nesting arrays and objects deeper than 32 levels is DataInvalid (400) on
    every route that reads JSON, never a 500 from the decoder's recursion, with or without an
    Idempotency-Key; 32 levels pass the limit (and meet the route's own rules)."""
    h = harness
    too_deep = {
        "100000 arrays": _nested(100_000),
        "33 mixed": b'{"identifier": ' + b'[{"a": ' * 16 + b"[1]" + b"}]" * 16 + b"}",
        "33 in a field": b'{"identifier": ' + _nested(32) + b"}",
    }
    within = b'{"identifier": ' + _nested(31) + b"}"
    for route in await body_routes(h):
        plain = h.headers(login_secret=route.login_secret)
        for label, body in too_deep.items():
            key = {"idempotency-key": f"{route.label} {label}"} if idempotent else {}
            response = await h.client.request(
                route.method, route.path, content=body, headers={**plain, **key}
            )
            answer = assert_envelope(response, 400, "DataInvalid")
            assert "32 levels" in answer["message"], (route.label, label, answer)
            assert answer["extra"]["max_depth"] == 32
        response = await h.client.request(route.method, route.path, content=within, headers=plain)
        assert response.status_code == 400, (route.label, response.text)
        assert "32 levels" not in response.json()["message"], route.label
