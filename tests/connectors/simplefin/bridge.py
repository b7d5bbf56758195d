"""A SimpleFIN server on 127.0.0.1 that follows the published protocol (1.0 draft).

``POST /simplefin/claim/<token>`` hands out an access URL once (403 afterwards);
``GET /simplefin/accounts`` wants HTTP basic auth from that URL (403 when revoked) and honours
``start-date`` (inclusive), ``end-date`` (exclusive), ``pending=1``, ``account`` (repeatable)
and ``balances-only=1``; every answer is an Account Set with an ``errors`` list.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback import serving

#: the longest a test server lives, whatever the test does
LIFETIME_SECONDS = 60.0


@dataclass
class Holder:
    """One bridge user's data: accounts as the protocol serialises them."""

    accounts: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)
    status: int | None = None  # answer /accounts with this HTTP status instead
    delay: float = 0.0  # seconds to wait before answering /accounts


@dataclass
class Credential:
    username: str
    password: str
    holder: Holder
    revoked: bool = False


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    authorized: bool


class Bridge:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.unclaimed: dict[str, Holder] = {}
        self.claimed: set[str] = set()
        self.credentials: dict[str, Credential] = {}
        self.seen: list[Seen] = []
        self.root = ""

    def setup_token(self, holder: Holder) -> str:
        token = secrets.token_urlsafe(12)
        with self.lock:
            self.unclaimed[token] = holder
        return base64.b64encode(f"{self.root}/claim/{token}".encode()).decode()

    def revoke_all(self) -> None:
        with self.lock:
            for credential in self.credentials.values():
                credential.revoked = True

    def accounts_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith("/accounts")]

    # --- protocol -------------------------------------------------------------------------

    def claim(self, token: str) -> tuple[int, bytes]:
        with self.lock:
            holder = self.unclaimed.pop(token, None)
            if holder is None:
                return 403, b"Forbidden"
            self.claimed.add(token)
            username, password = secrets.token_hex(6), secrets.token_urlsafe(12)
            self.credentials[username] = Credential(username, password, holder)
        scheme, rest = self.root.split("://", 1)
        return 200, f"{scheme}://{username}:{password}@{rest}".encode()

    def authorize(self, header: str | None) -> Credential | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        with self.lock:
            credential = self.credentials.get(username)
        if credential is None or credential.revoked:
            return None
        return credential if secrets.compare_digest(credential.password, password) else None

    def account_set(self, holder: Holder, query: dict[str, list[str]]) -> dict[str, Any]:
        start = int(query["start-date"][0]) if "start-date" in query else None
        end = int(query["end-date"][0]) if "end-date" in query else None
        pending = query.get("pending", ["0"])[0] == "1"
        wanted = set(query.get("account", []))
        balances_only = query.get("balances-only", ["0"])[0] == "1"
        accounts = []
        for raw in holder.accounts:
            if wanted and raw["id"] not in wanted:
                continue
            account = {k: v for k, v in raw.items() if k != "transactions"}
            if not balances_only:
                account["transactions"] = [
                    t for t in raw.get("transactions", []) if _keep(t, start, end, pending)
                ]
            accounts.append(account)
        return {"errors": list(holder.errors), "accounts": accounts}


def _keep(row: dict[str, Any], start: int | None, end: int | None, pending: bool) -> bool:
    is_pending = bool(row.get("pending")) or not row.get("posted")
    if is_pending and not pending:
        return False
    when = int(row.get("posted") or row.get("transacted_at") or 0)
    if is_pending and not when:
        return True
    return (start is None or when >= start) and (end is None or when < end)


def _handler(bridge: Bridge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self, credential: Credential | None) -> tuple[str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with bridge.lock:
                bridge.seen.append(Seen(self.command, parts.path, query, credential is not None))
            return parts.path, query

        def do_POST(self) -> None:
            path, _ = self._record(None)
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            if not path.startswith("/simplefin/claim/"):
                self._send(404, b"Not Found", "text/plain")
                return
            status, body = bridge.claim(path.rsplit("/", 1)[1])
            self._send(status, body, "text/plain")

        def do_GET(self) -> None:
            credential = bridge.authorize(self.headers.get("Authorization"))
            path, query = self._record(credential)
            if path == "/simplefin/info":
                self._send(200, json.dumps({"versions": ["1.0"]}).encode())
                return
            if path != "/simplefin/accounts":
                self._send(404, b"Not Found", "text/plain")
                return
            if credential is None:
                self._send(403, b"Forbidden", "text/plain")
                return
            holder = credential.holder
            if holder.delay:
                time.sleep(holder.delay)
            if holder.status is not None:
                self._send(holder.status, b"Unavailable", "text/plain")
                return
            self._send(200, json.dumps(bridge.account_set(holder, query)).encode())

    return Handler


@contextmanager
def running_bridge() -> Iterator[Bridge]:
    """Serve a fresh bridge on a free loopback port for the duration of the block."""
    bridge = Bridge()
    with serving(_handler(bridge), LIFETIME_SECONDS) as origin:
        bridge.root = f"{origin}/simplefin"
        yield bridge
