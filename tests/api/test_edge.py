"""The edge (``bankhub.api.edge``): every concern of every answer in one ASGI layer, one ``send``
wrapper, in the order the protections need."""

from __future__ import annotations

import logging
import sys
from types import FrameType
from typing import Any

import pytest

from bankhub.api import edge, request_context
from bankhub.app import create_app
from bankhub.config import Environment
from bankhub.context import current as current_context
from bankhub.db import tenancy
from bankhub.security import network
from tests.conftest import Harness, make_settings


def _scope(path: str = "/v2/account", *, scheme: str = "http", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"bankhub.test")],
        "scheme": scheme,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        **extra,
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _bankhub_send_frames() -> list[str]:
    """The bankhub functions between the caller of our ``send`` and the first frame outside
    bankhub: the ``send`` wrappers an answer's start went through."""
    frame: FrameType | None = sys._getframe(2)  # our send's caller
    names = []
    while frame is not None and frame.f_globals.get("__name__", "").startswith("bankhub."):
        names.append(f"{frame.f_globals['__name__']}.{frame.f_code.co_name}")
        frame = frame.f_back
    return names


async def test_an_api_answer_passes_one_send_wrapper(harness: Harness) -> None:
    """Litestar has no ``before_send`` hooks of bankhub's and the answer's start reaches the
    server through the edge's one wrapper: not one per concern."""
    app = create_app(harness.hub)
    assert app.before_send == []
    seen: list[list[str]] = []
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            seen.append(_bankhub_send_frames())
        messages.append(message)

    await app(_scope("/v2/nothing-here"), _receive, send)  # type: ignore[arg-type]
    assert messages[0]["status"] == 404
    assert seen == [["bankhub.api.edge.send_once"]]
    headers = {k.decode().lower(): v.decode() for k, v in messages[0]["headers"]}
    assert headers["cache-control"] == "no-store"  # S24, from the edge's hooks
    assert request_context.sane(headers["x-request-id"])


@pytest.mark.parametrize(
    "harness",
    [{"env": Environment.PRODUCTION, "kek": "q" * 43, "trusted_proxies": "127.0.0.1/32"}],
    indirect=True,
)
async def test_every_answer_carries_what_the_edge_adds(harness: Harness) -> None:
    """HSTS (S26) over TLS, the request id (the caller's when sane), no-store under /v2 (S24),
    on the router's own 404 too."""
    for path in ("/v2/service", "/v2/no-such-route"):
        answer = await harness.client.get(
            path,
            headers={**harness.headers(), "x-forwarded-proto": "https", "x-request-id": "r-1"},
        )
        assert answer.headers["strict-transport-security"].startswith("max-age=")
        assert answer.headers["x-request-id"] == "r-1"
        assert answer.headers["cache-control"] == "no-store"


class _Recorder:
    """An application standing in for Litestar: records what it saw, answers or raises."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.tenant: object = "unset"
        self.context_id: str | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.tenant = tenancy.current()
        context = current_context()
        self.context_id = context.request_id if context else None
        tenancy.choose(42)  # a route chooses its tenant and never undoes it
        if self.fail:
            raise RuntimeError("the application failed before answering")
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def test_each_request_starts_without_a_tenant_and_leaves_none(
    tmp_path: Any, migrated_database_url: str
) -> None:
    """S14: whatever the serving task had chosen, the application starts with no tenant, and
    the route's choice does not outlive the request."""
    settings = make_settings(tmp_path, migrated_database_url)
    inner = _Recorder()
    layer = edge.Edge(inner, settings, None, [])
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    tenancy.choose(7)
    await layer(_scope(), _receive, send)  # type: ignore[arg-type]
    assert inner.tenant is None
    assert tenancy.current() == 7
    assert current_context() is None  # the request's context ended with it
    assert inner.context_id is not None
    headers = dict(sent[0]["headers"])
    assert headers[b"x-request-id"].decode() == inner.context_id


async def test_hooks_run_then_the_outcome_is_settled_before_the_answer_leaves(
    tmp_path: Any, migrated_database_url: str
) -> None:
    """On the answer's start: the hooks, then the authentication outcome (S18: a block is
    stored before the failure that caused it is answered), then the headers; once only."""
    settings = make_settings(tmp_path, migrated_database_url)
    order: list[str] = []

    class Guard:
        def __init__(self) -> None:
            self.settings = settings

        async def settle(self, address: str, outcome: network.AuthOutcome) -> None:
            order.append(f"settled {address}")

    class Failing(_Recorder):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            network.note_failure(scope)
            await super().__call__(scope, receive, send)

    async def hook(message: Any, scope: Any) -> None:
        order.append("hook")

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            order.append("sent")
            names = {k for k, _ in message["headers"]}
            assert b"x-request-id" in names

    layer = edge.Edge(Failing(), settings, Guard(), [hook])  # type: ignore[arg-type]
    await layer(_scope(), _receive, send)  # type: ignore[arg-type]
    assert order == ["hook", "settled 127.0.0.1", "sent"]


async def test_an_application_that_raises_is_observed_as_500(
    tmp_path: Any, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, migrated_database_url)
    layer = edge.Edge(_Recorder(fail=True), settings, None, [])

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent")

    with caplog.at_level(logging.INFO, logger="bankhub.access"), pytest.raises(RuntimeError):
        await layer(_scope("/v2/account"), _receive, send)  # type: ignore[arg-type]
    lines = [r for r in caplog.records if r.name == "bankhub.access"]
    assert [r.getMessage() for r in lines] == ["GET /v2/account 500"]
    assert tenancy.current() is None
