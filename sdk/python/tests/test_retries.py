"""Retries: 429 from a real bankhub with low limits, 503 / 409 / connection failures from a
scripted loopback peer; ``Retry-After`` in seconds and as an HTTP date; backoff capped."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sdk_support import TOKENS_PER_SECOND, Bankhub, free_port

from bankhub_client import (
    APIConnectionError,
    BankhubClient,
    ConflictError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from bankhub_client._retry import parse_retry_after

NOW = 1_800_000_000.0
APP = {
    "client_id": "c",
    "name": "n",
    "retention_hours": 1,
    "retention_set_by": None,
    "retention_set_at": None,
    "credential_vault": False,
    "credential_vault_set_by": None,
    "credential_vault_set_at": None,
}
CUSTOMER = {"customer_id": "6f1c0d5e-0000-4000-8000-000000000001", "identifier": "x"}


# --- 429 from bankhub itself ------------------------------------------------------------------
# The session's server allows TOKENS_PER_SECOND calls of POST /oauth/token a second per key.


def test_a_429_is_a_typed_rate_limit_error(bankhub: Bankhub) -> None:
    with bankhub.client(retry=RetryPolicy(max_retries=0)) as client:
        refused = _first_refusal(client)
    assert refused.code == "RateLimited"
    assert refused.status == 429
    assert refused.request_id
    assert refused.retry_after is not None
    assert 0 < refused.retry_after <= 1


def _first_refusal(client: BankhubClient) -> RateLimitError:
    # a burst goes over the limit within a few calls, wherever the window's edge falls
    for _ in range(20):
        try:
            client.oauth_token()
        except RateLimitError as exc:
            return exc
    raise AssertionError("20 token requests at once were never refused")


def test_a_429_is_retried_after_its_retry_after(bankhub: Bankhub) -> None:
    answers: list[httpx.Response] = []
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)  # the server's window must really pass

    with bankhub.client(
        http_client=httpx.Client(event_hooks={"response": [answers.append]}), sleep=sleep
    ) as client:
        for _ in range(3 * TOKENS_PER_SECOND):
            assert client.oauth_token().access_token
    refused = [r for r in answers if r.status_code == 429]
    assert refused, "a burst of token requests goes over the limit"
    assert slept == [float(r.headers["retry-after"]) for r in refused]


# --- a scripted peer ---------------------------------------------------------------------------


@dataclass
class Peer:
    """Answers each request with the next scripted ``(status, headers, body)``."""

    script: list[tuple[int, dict[str, str], Any]]
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Peer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                self.rfile.read(length)
                peer.seen.append((self.command, self.path, dict(self.headers.items())))
                status, headers, body = peer.script.pop(0)
                raw = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _error(code: str) -> dict[str, Any]:
    return {"error": code, "message": code, "extra": {}}


def _client(url: str, slept: list[float], **options: Any) -> BankhubClient:
    return BankhubClient(
        url,
        client_id="c",
        service_secret="s",
        sleep=slept.append,
        clock=lambda: NOW,
        random=lambda: 1.0,
        **options,
    )


def test_a_503_with_an_http_date_is_waited_for_and_the_write_keeps_its_key() -> None:
    when = email.utils.formatdate(NOW + 7, usegmt=True)
    peer = Peer(
        [
            (503, {"retry-after": when}, _error("ServerMaintenance")),
            (200, {}, {"data": CUSTOMER, "version": "v2"}),
        ]
    ).start()
    slept: list[float] = []
    try:
        with _client(peer.url, slept) as client:
            made = client.create_customer(identifier="x")
    finally:
        peer.stop()
    assert made.customer_id == CUSTOMER["customer_id"]
    assert slept == [7.0]
    keys = [headers["idempotency-key"] for _, _, headers in peer.seen]
    assert len(keys) == 2
    assert keys[0] == keys[1]


def test_an_idempotency_key_in_progress_is_sent_again() -> None:
    peer = Peer(
        [
            (409, {"retry-after": "1"}, _error("IdempotencyKeyInProgress")),
            (200, {}, {"data": CUSTOMER, "version": "v2"}),
        ]
    ).start()
    slept: list[float] = []
    try:
        with _client(peer.url, slept) as client:
            client.create_customer(identifier="x", idempotency_key="mine")
    finally:
        peer.stop()
    assert slept == [1.0]
    assert [h["idempotency-key"] for _, _, h in peer.seen] == ["mine", "mine"]


def test_without_retry_after_the_backoff_doubles_up_to_its_cap() -> None:
    peer = Peer([(503, {}, _error("ConnectError")) for _ in range(5)]).start()
    slept: list[float] = []
    policy = RetryPolicy(max_retries=4, backoff_base=0.5, backoff_cap=2.0)
    try:
        with _client(peer.url, slept, retry=policy) as client, pytest.raises(ServerError) as fail:
            client.read_app()
    finally:
        peer.stop()
    assert fail.value.code == "ConnectError"
    assert slept == [0.5, 1.0, 2.0, 2.0]
    assert len(peer.seen) == 5


def test_the_backoff_is_jittered() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=8.0)
    assert policy.delay(2, None, lambda: 0.25) == 1.0
    assert policy.delay(1, None, lambda: 0.0) == 0.0


def test_a_retry_after_beyond_the_limit_is_raised_at_once() -> None:
    peer = Peer([(429, {"retry-after": "900"}, _error("AddressBlocked"))]).start()
    slept: list[float] = []
    try:
        with _client(peer.url, slept) as client, pytest.raises(RateLimitError) as blocked:
            client.read_app()
    finally:
        peer.stop()
    assert blocked.value.code == "AddressBlocked"
    assert blocked.value.retry_after == 900.0
    assert slept == []


def test_other_errors_are_not_retried() -> None:
    peer = Peer(
        [(500, {}, _error("InternalError")), (409, {}, _error("IdempotencyKeyReused"))]
    ).start()
    slept: list[float] = []
    try:
        with _client(peer.url, slept) as client:
            with pytest.raises(ServerError):
                client.read_app()
            with pytest.raises(ConflictError):
                client.create_customer(identifier="x")
    finally:
        peer.stop()
    assert slept == []
    assert len(peer.seen) == 2


def test_connection_failures_are_retried_then_raised() -> None:
    slept: list[float] = []
    closed = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy(max_retries=2)
    with _client(closed, slept, retry=policy) as client, pytest.raises(APIConnectionError):
        client.read_app()
    assert slept == [0.5, 1.0]


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(email.utils.formatdate(NOW + 30, usegmt=True), lambda: NOW) == 30.0
    assert parse_retry_after(email.utils.formatdate(NOW - 30, usegmt=True), lambda: NOW) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after(None) is None
