"""A logo host on 127.0.0.1 over https (a throwaway CA), with the logos a registry may name:
good ones, hostile ones and broken ones. Threaded, so that a browser or another process can
fetch from it too; it stops by itself."""

from __future__ import annotations

import io
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from PIL import Image

from tests.security.tlsfiles import Pki, make_pki
from tests.support.loopback import QuietServer

SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b"<script>alert(document.cookie)</script><rect width='64' height='64'/></svg>"
)
HUGE_BYTES = 20 * 1024 * 1024


def picture(width: int, height: int, fmt: str) -> bytes:
    """An image of two colours in ``fmt`` (PNG with transparency, JPEG without)."""
    mode = "RGBA" if fmt == "PNG" else "RGB"
    image = Image.new(mode, (width, height), (0, 110, 80, 255)[: len(mode)])
    image.paste((240, 200, 0, 255)[: len(mode)], (width // 4, height // 4, width // 2, height // 2))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@dataclass
class LogoHost:
    origin: str = ""
    pki: Pki | None = None
    #: paths asked for, in order
    asked: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"


@contextmanager
def logo_host(directory: Path, lifetime: float = 120.0) -> Iterator[LogoHost]:
    host = LogoHost(pki=make_pki(directory / "logo-host-pki"))
    assert host.pki is not None
    png, jpeg = picture(300, 200, "PNG"), picture(256, 256, "JPEG")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            host.asked.append(self.path)
            if self.path == "/logo.png":
                self._answer(png, "image/png")
            elif self.path == "/logo.jpg":
                self._answer(jpeg, "image/jpeg")
            elif self.path == "/mislabelled.png":
                self._answer(png, "text/plain")  # the bytes decide, not the label
            elif self.path == "/script.svg":
                self._answer(SVG, "image/svg+xml")
            elif self.path == "/not-an-image.png":
                self._answer(b"<!doctype html><title>Not found</title><p>gone", "image/png")
            elif self.path == "/huge.png":
                self._huge()
            elif self.path == "/hangs.png":
                host.release.wait(lifetime)
            elif self.path == "/to-http.png":
                self._redirect(f"http://127.0.0.1:{port}/logo.png")
            elif self.path == "/moved.png":
                self._redirect("/logo.png")
            else:
                self._answer(b"", "text/plain", 404)

        def _answer(self, body: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        def _huge(self) -> None:
            # a PNG's first bytes, then 20 MB more, sent without a length (chunk by chunk)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            block = png[:64] + b"\0" * (256 * 1024 - 64)
            for _ in range(HUGE_BYTES // len(block)):
                self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = QuietServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(host.pki.cert, host.pki.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    watchdog = threading.Timer(lifetime, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    host.origin = f"https://127.0.0.1:{port}"
    try:
        yield host
    finally:
        host.release.set()
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
