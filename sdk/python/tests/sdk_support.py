"""What the SDK's tests need around a real ``bankhub serve``.

The server runs as a subprocess of the Python that runs the tests (bankhub must be installed
there: ``scripts/bootstrap`` does it), on a free loopback port, with a throwaway SQLite
database in a temporary directory. An app is created with the CLI before it starts, with a
webhook endpoint that points at a receiver in this process. Nothing here imports bankhub: the
SDK is tested as a partner uses it, over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import httpx

from bankhub_client import BankhubClient

START_TIMEOUT = 60.0
CALLBACK = "http://localhost:2000/done"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
#: the sandbox bank's first service (Vietnam); its users log in with any name and this password
SANDBOX_SERVICE = 1
#: the session server's limit on POST /oauth/token per key
TOKENS_PER_SECOND = 3
SANDBOX_PASSWORD = "pass_good"
#: real statement files (the repository's shared corpus, beside the checkout)
CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env.update(
        {
            "BANKHUB_DATA_DIR": str(data_dir),
            "BANKHUB_ENV": "test",
            "BANKHUB_CREATE_DEMO_APP": "false",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_COLOR": "1",
            "TERM": "dumb",
            "COLUMNS": "300",
        }
    )
    env.update(extra)
    return env


@dataclass
class Server:
    """``python -m bankhub serve`` on 127.0.0.1; its output in ``log_path``."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @classmethod
    def start(cls, data_dir: Path, env: Mapping[str, str]) -> Server:
        port = free_port()
        log_path = data_dir.parent / f"server-{port}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bankhub", "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(data_dir, env),
            cwd=data_dir.parent,
            start_new_session=True,
        )
        server = cls(f"http://127.0.0.1:{port}", proc, log_path, log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                said = server.output()
                server.stop()
                raise RuntimeError(f"bankhub serve exited early:\n{said}")
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return server
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"bankhub serve did not answer /healthz:\n{server.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 that records each delivery and answers 204."""

    deliveries: list[Delivery] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.arrived:
                    receiver.deliveries.append(Delivery(dict(self.headers.items()), body))
                    receiver.arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, event_type: str, timeout: float = 30.0) -> Delivery:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for delivery in self.deliveries:
                    if json.loads(delivery.body).get("event_type") == event_type:
                        return delivery
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {event_type} delivery within {timeout}s")
                self.arrived.wait(left)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass(frozen=True)
class App:
    client_id: str
    service_secret: str
    app_secret: str
    webhook_secret: str


@dataclass(frozen=True)
class Bankhub:
    url: str
    app: App
    data_dir: Path
    receiver: Receiver
    server: Server

    def client(self, **options: Any) -> BankhubClient:
        return BankhubClient(
            self.url,
            client_id=self.app.client_id,
            service_secret=self.app.service_secret,
            **options,
        )


def create_app(data_dir: Path, webhook_url: str) -> App:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bankhub", "apps", "create", "SDK tests"),
            *("--json", "--webhook-url", webhook_url),
        ],
        env=child_env(data_dir, {}),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    made = json.loads(done.stdout.strip().splitlines()[-1])
    return App(
        made["client_id"], made["service_secret"], made["app_secret"], made["webhook_secret"]
    )


# --- a login linked through the API and the connect page -------------------------------------


@dataclass(frozen=True)
class Linked:
    customer_id: str
    login_id: int
    login_secret: str


def _csrf(page: str) -> str:
    found = CSRF.search(page)
    assert found, page[:2000]
    return found.group(1)


def finish_connect(base_url: str, connect_url: str, username: str) -> tuple[int, str]:
    """What the end user does on the connect page (a browser's requests, over plain HTTP):
    agree, log in to the sandbox bank, wait for the first fetch. Returns the login's id and
    secret from the callback."""
    path = connect_url.removeprefix(base_url)
    assert path != connect_url, (connect_url, base_url)
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as browser:
        assert browser.get(path).status_code == 303
        page = browser.get("/v2/connect/session").text
        browser.post("/v2/connect/consent", data={"csrf": _csrf(page), "action": "agree"})
        page = browser.get("/v2/connect/session").text
        form = {"csrf": _csrf(page), "username": username, "password": SANDBOX_PASSWORD}
        browser.post("/v2/connect/credentials", data=form)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = browser.get("/v2/connect/session")
            location = shown.headers.get("location", "")
            if shown.status_code == 303 and location.startswith(CALLBACK):
                payload = json.loads(unquote(urlsplit(location).path.split("/")[-1]))
                assert payload["status"] == "success", payload
                return int(payload["login_id"]), str(payload["secret"])
            assert "rejected" not in shown.text, shown.text[:2000]
            time.sleep(0.05)
    raise AssertionError("the connect flow did not finish within 60 s")


# --- watching the SDK's requests ---------------------------------------------------------------


class Recorder:
    """The requests and answers an httpx client saw (its event hooks)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []

    def client(self) -> httpx.Client:
        return httpx.Client(
            timeout=30.0,
            event_hooks={"request": [self.requests.append], "response": [self.responses.append]},
        )


class LoseFirstAnswer(httpx.HTTPTransport):
    """Sends every request to the server, but loses the first answer to a POST: the server
    carried it out, the client saw the connection drop."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []
        self.answers: list[httpx.Response] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = super().handle_request(request)
        if request.method == "POST" and len(self.sent) == 1:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset after the request was carried out")
        self.answers.append(response)
        return response
