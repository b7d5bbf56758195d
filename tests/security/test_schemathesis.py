"""Property-based run of schemathesis against ``/openapi.json`` of a live loopback server.

Every documented operation is called with generated data, valid and (where the operation takes
parameters or a body) invalid, with a demo app's credentials and the login-secret of a login
connected first. No answer may be a 5xx, and every answer must keep the description: a documented
status, media type, headers and body schema; invalid data must be refused with a 4xx.
Bounded (examples per operation and one overall deadline) and deterministic (derandomized).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import hypothesis
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.http_connect import connect_over_http
from tests.support.server_plugin import LiveServerFactory

CALLBACK = "https://partner.example/callback"
#: generated examples per operation and mode
MAX_EXAMPLES = 25
#: the generation stops here; an operation not reached by then fails the test. It bounds a hang,
#: not speed: about 35 s on a quiet machine, and it must also hold beside parallel test workers
#: and other jobs on a loaded one (150 s was not enough at a load average of 9 on 2 cores).
DEADLINE_SECONDS = 300.0
#: operations that end the login or customer the others need run last, in this order
LAST = ("PUT /v2/login/deactivate", "DELETE /v2/login", "DELETE /v2/customer")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: operations that must have answered 200 at least once: the credentials really worked
MUST_SUCCEED = ("GET /v2/service", "GET /v2/login", "GET /v2/account", "GET /v2/app")

Operation = schemathesis.APIOperation[Any, Any, Any, Any]  # generic over its spec


def _prepare(base_url: str, creds: dict[str, str]) -> dict[str, str]:
    """A customer and a connected login of the demo app: the headers every call sends."""
    headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10.0) as client:
        customer = client.post("/v2/customer", json={"identifier": "schemathesis"})
        assert customer.status_code == 200, customer.text
        token = client.post(
            "/v2/token",
            json={
                "customer_id": customer.json()["data"]["customer_id"],
                "service_id": 1,
                "callback_url": CALLBACK,
            },
        )
        assert token.status_code == 200, token.text
    result = connect_over_http(token.json()["data"]["connect_url"], base_url, CALLBACK)
    assert result["status"] == "success", result
    return {**headers, "login-secret": str(result["secret"])}


def _order(operation: Operation) -> int:
    return LAST.index(operation.label) + 1 if operation.label in LAST else 0


def _negatable(operation: Operation) -> bool:
    """Invalid data needs something to make invalid: the credentials are never varied."""
    return bool(len(operation.query) or len(operation.path_parameters) or operation.body)


def _brief(exc: BaseException) -> str:
    """The failure's own summary and its curl line, without the long schema dumps."""
    lines = str(exc).splitlines()
    keep = [line for line in lines if line.strip().startswith(("- ", "curl ", "["))]
    return "\n".join(keep[:12]) or "\n".join(lines[:12])


def _run(
    operation: Operation,
    mode: schemathesis.GenerationMode,
    headers: dict[str, str],
    session: requests.Session,
    seen: Counter[tuple[str, int]],
) -> None:
    checks = [*CHECKS, negative_data_rejection] if mode.is_negative else CHECKS

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
        report_multiple_bugs=False,
    )
    @hypothesis.given(case=operation.as_strategy(mode, headers=headers))
    def call(case: schemathesis.Case[Operation]) -> None:
        response = case.call(session=session, headers=headers, timeout=20)
        seen[(operation.label, response.status_code)] += 1
        case.validate_response(response, checks=checks, headers=headers)

    call()


def test_the_api_keeps_its_openapi_description(live_server: LiveServerFactory) -> None:
    server = live_server()
    headers = _prepare(server.url, server.demo_credentials())
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    results = list(schema.get_all_operations())
    assert not [result.err() for result in results if isinstance(result, Err)]
    operations = sorted((result.ok() for result in results if isinstance(result, Ok)), key=_order)
    labels = {operation.label for operation in operations}
    assert set(MUST_SUCCEED) <= labels, sorted(labels)
    assert not {label for label in labels if label.startswith(("GET /v2/connect", "/sandbox"))}

    failures: list[str] = []
    seen: Counter[tuple[str, int]] = Counter()
    stop_at = time.monotonic() + DEADLINE_SECONDS
    with requests.Session() as session:
        for operation in operations:
            modes = [schemathesis.GenerationMode.POSITIVE]
            if _negatable(operation):
                modes.append(schemathesis.GenerationMode.NEGATIVE)
            for mode in modes:
                if time.monotonic() > stop_at:
                    failures.append(f"{operation.label} [{mode.value}]: not reached in time")
                    continue
                try:
                    _run(operation, mode, headers, session, seen)
                except hypothesis.errors.Unsatisfiable:
                    # e.g. a path segment that is any string: nothing in it can be invalid
                    assert mode.is_negative, operation.label
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all are listed
                    failures.append(f"{operation.label} [{mode.value}]: {_brief(exc)}")

    assert not failures, "\n\n".join(failures)
    for label in labels:
        assert any(op == label for op, _ in seen), f"{label} was never called"
    for label in MUST_SUCCEED:
        assert seen[(label, 200)], f"{label} never answered 200: {sorted(seen)}"
    assert not [key for key in seen if key[1] >= 500], sorted(seen)
