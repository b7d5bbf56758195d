"""A partner's key host on 127.0.0.1: an ``authorized_keys`` file as ``https://github.com/USER.keys``
serves it and a JWKS, each with an ETag honoured by ``If-None-Match``; the documents can be
changed while it runs, and it counts what it was asked. Threaded (a ``bankhub serve`` process
or a browser's server may fetch from it), stopped by itself after ``lifetime``."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import QuietServer


@dataclass
class KeyHost:
    origin: str = ""
    port: int = 0
    #: path → (content type, body)
    documents: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    #: paths asked for, in order, and those asked with If-None-Match
    asked: list[str] = field(default_factory=list)
    conditional: list[str] = field(default_factory=list)
    #: answers sent as 304
    not_modified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopper: Callable[[], None] | None = None

    def stop(self) -> None:
        """Stop serving now: the port refuses connections from then on."""
        if self.stopper is not None:
            self.stopper()

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def keys_file(self, path: str, *lines: str) -> None:
        with self.lock:
            text = "".join(f"{line}\n" for line in lines)
            self.documents[path] = ("text/plain; charset=utf-8", text.encode())

    def serve(self, path: str, content_type: str, body: bytes) -> None:
        with self.lock:
            self.documents[path] = (content_type, body)


@contextmanager
def key_host(lifetime: float = 120.0) -> Iterator[KeyHost]:
    host = KeyHost()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with host.lock:
                host.asked.append(self.path)
                if self.headers.get("If-None-Match"):
                    host.conditional.append(self.path)
                document = host.documents.get(self.path)
            if self.path == "/to-unspecified.keys":
                # 0.0.0.0 reaches this very host on Linux: the guard must refuse it
                self._redirect(f"http://0.0.0.0:{host.port}/user.keys")
                return
            if self.path == "/moved.keys":
                self._redirect("/user.keys")
                return
            if self.path == "/huge.keys":
                self._answer(b"ssh-ed25519 " + b"A" * 100_000 + b"\n", "text/plain")
                return
            if document is None:
                self._answer(b"Not Found", "text/plain", 404)
                return
            kind, body = document
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                with host.lock:
                    host.not_modified += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Connection", "close")
                self.end_headers()
                return
            self._answer(body, kind, etag=etag)

        def _answer(self, body: bytes, kind: str, status: int = 200, etag: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = QuietServer(("127.0.0.1", 0), Handler)
    host.port = int(server.server_address[1])
    host.origin = f"http://127.0.0.1:{host.port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    watchdog = threading.Timer(lifetime, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    running = True

    def stop() -> None:
        nonlocal running
        if running:
            running = False
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    host.stopper = stop
    try:
        yield host
    finally:
        watchdog.cancel()
        stop()
