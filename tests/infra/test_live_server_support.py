"""The live_server fixture, exercised with a stand-in for ``python -m bankhub serve``."""

from __future__ import annotations

import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from tests.support.live_server import LiveServerError
from tests.support.server_plugin import LiveServerFactory

FAKE_SERVER = textwrap.dedent(
    """
    import os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    host, port = sys.argv[1], int(sys.argv[2])
    mode = os.environ.get("FAKE_MODE", "ok")
    if mode == "crash":
        print("fatal: BANKHUB_SECRET_KEY is not set", flush=True)
        sys.exit(3)

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == "/healthz" else 404
            body = os.environ["BANKHUB_DATA_DIR"].encode() if code == 200 else b""
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = HTTPServer((host, port), H)
    print(f"bankhub listening on http://{host}:{port}")
    print("\\x1b[1mdemo app\\x1b[0m")
    print("  client-id: demo-client-123")
    print("  service-secret: svc_" + "s" * 40)
    print("  app-secret: app_" + "a" * 40)
    print("env=" + os.environ.get("BANKHUB_ENV", "?") + " extra=" + os.environ.get("EXTRA", "-"))
    sys.stdout.flush()
    srv.serve_forever()
    """
)


@pytest.fixture
def fake_command(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_bankhub.py"
    script.write_text(FAKE_SERVER)
    return [sys.executable, str(script), "{host}", "{port}"]


def test_live_server_starts_parses_and_stops(
    live_server: LiveServerFactory, fake_command: list[str]
) -> None:
    server = live_server(env={"EXTRA": "yes"}, command=fake_command)
    assert server.url == f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as resp:  # noqa: S310
        assert resp.read().decode() == str(server.data_dir)
    assert f"bankhub listening on {server.url}" in server.stdout_text()
    assert "env=test extra=yes" in server.stdout_text()
    assert server.demo_credentials() == {
        "client_id": "demo-client-123",
        "service_secret": "svc_" + "s" * 40,
        "app_secret": "app_" + "a" * 40,
    }
    server.stop()
    assert not server.running
    server.stop()  # idempotent; the fixture stops it again at teardown


def test_live_server_reports_early_exit(
    live_server: LiveServerFactory, fake_command: list[str]
) -> None:
    with pytest.raises(LiveServerError, match=r"(?s)exited with code 3.*BANKHUB_SECRET_KEY"):
        live_server(env={"FAKE_MODE": "crash"}, command=fake_command)


def test_live_server_times_out_with_output(live_server: LiveServerFactory, tmp_path: Path) -> None:
    script = tmp_path / "silent.py"
    script.write_text("import time\nprint('starting', flush=True)\ntime.sleep(60)\n")
    with pytest.raises(LiveServerError, match=r"(?s)did not answer 200.*starting"):
        live_server(command=[sys.executable, str(script)], timeout=1.5)
