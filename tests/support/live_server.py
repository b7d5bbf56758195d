"""The real bankhub server in a subprocess, for end-to-end tests.

    server = LiveServer.start(data_dir=tmp_path / "data", env={"BANKHUB_MAINTENANCE": "1"})
    httpx.get(f"{server.url}/healthz")
    creds = server.demo_credentials()  # keys client_id, service_secret, app_secret
    server.stop()

The child gets a clean environment: inherited ``BANKHUB_*`` variables are dropped, then
``BANKHUB_DATA_DIR``, ``BANKHUB_ENV=test`` and the caller's ``env`` are set. Its stdout and
stderr go to ``<data_dir>/../server-<port>.log``; ``stdout_text()`` reads it. With
``separate_stderr`` the log lines (standard error) go to ``server-<port>.err`` instead, read by
``stderr_text()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from tests.support.postgres import free_port

START_TIMEOUT = 30.0
STOP_GRACE = 5.0

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CRED_RE = re.compile(
    r"^\W*(client-id|service-secret|app-secret)\s*[:=]\s*(\S+)", re.IGNORECASE | re.MULTILINE
)


class LiveServerError(RuntimeError):
    """The server did not come up (or misbehaved); the message carries its output."""


def default_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "bankhub", "serve", "--host", host, "--port", str(port)]


class LiveServer:
    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        url: str,
        port: int,
        data_dir: Path,
        log_path: Path,
        log_file: IO[bytes],
        err_path: Path | None = None,
        err_file: IO[bytes] | None = None,
    ) -> None:
        self.proc = proc
        self.err_path = err_path
        self._err_file = err_file
        self.url = url
        self.port = port
        self.data_dir = data_dir
        self.log_path = log_path
        self._log_file: IO[bytes] | None = log_file

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        command: Sequence[str] | None = None,
        timeout: float = START_TIMEOUT,
        health_path: str = "/healthz",
        separate_stderr: bool = False,
    ) -> LiveServer:
        """Start the server and wait until ``GET {url}{health_path}`` answers 200.

        ``command`` replaces ``python -m bankhub serve --host H --port P`` (it may contain
        ``{host}`` and ``{port}``).
        """
        port = port or free_port(host)
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = data_dir.parent / f"server-{port}.log"
        argv = (
            [part.format(host=host, port=port) for part in command]
            if command is not None
            else default_command(host, port)
        )
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
        child_env.update(
            {
                "BANKHUB_DATA_DIR": str(data_dir),
                "BANKHUB_ENV": "test",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                # rich & co: no colours, no wrapping of long secret lines at 80 columns.
                "NO_COLOR": "1",
                "TERM": "dumb",
                "COLUMNS": "300",
            }
        )
        child_env.update(env or {})
        log_file = log_path.open("wb")
        err_path = data_dir.parent / f"server-{port}.err" if separate_stderr else None
        err_file = err_path.open("wb") if err_path is not None else None
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=err_file if err_file is not None else subprocess.STDOUT,
                env=child_env,
                cwd=data_dir.parent,
                start_new_session=True,
            )
        except BaseException:
            log_file.close()
            if err_file is not None:
                err_file.close()
            raise
        server = cls(
            proc,
            url=f"http://{host}:{port}",
            port=port,
            data_dir=data_dir,
            log_path=log_path,
            log_file=log_file,
            err_path=err_path,
            err_file=err_file,
        )
        try:
            server.wait_healthy(timeout=timeout, path=health_path)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_healthy(self, *, timeout: float = START_TIMEOUT, path: str = "/healthz") -> None:
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise LiveServerError(
                    f"bankhub exited with code {code} before {path} answered\n"
                    f"--- output ---\n{self.stdout_text()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
                    last_error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
                exc.close()
            except (urllib.error.URLError, OSError) as exc:
                last_error = repr(exc)
            time.sleep(0.1)
        raise LiveServerError(
            f"bankhub did not answer 200 on {self.url}{path} within {timeout:.0f}s "
            f"(last: {last_error})\n--- output ---\n{self.stdout_text()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL (whole process group) after 5 s. Returns the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_GRACE)
        # Workers the server left behind in its session.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._err_file is not None:
            self._err_file.close()
            self._err_file = None
        return self.proc.returncode

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- output ----------------------------------------------------------------------------------

    def stdout_text(self) -> str:
        """Everything the server printed so far (stdout and stderr), without ANSI colours."""
        if self._log_file is not None:
            self._log_file.flush()
        try:
            raw = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return _ANSI_RE.sub("", raw.decode("utf-8", errors="replace"))

    def stderr_text(self) -> str:
        """What the server wrote to standard error (its log lines), when kept apart."""
        if self.err_path is None:
            return self.stdout_text()
        if self._err_file is not None:
            self._err_file.flush()
        try:
            return self.err_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, pattern: str, *, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the output matches ``pattern`` (a regex, multiline)."""
        rx = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = rx.search(self.stdout_text())
            if match:
                return match
            if time.monotonic() >= deadline or not self.running:
                raise LiveServerError(
                    f"output never matched {pattern!r}\n--- output ---\n{self.stdout_text()}"
                )
            time.sleep(0.05)

    def demo_credentials(self, *, timeout: float = 5.0) -> dict[str, str]:
        """``{"client_id", "service_secret", "app_secret"}`` parsed from the start-up banner."""
        deadline = time.monotonic() + timeout
        while True:
            found = {
                key.lower().replace("-", "_"): value.strip().strip("'\"`,")
                for key, value in _CRED_RE.findall(self.stdout_text())
            }
            if len(found) == 3:
                return found
            if time.monotonic() >= deadline:
                raise LiveServerError(
                    "the server output has no complete demo credentials (client-id, "
                    f"service-secret, app-secret); found {sorted(found)}\n"
                    f"--- output ---\n{self.stdout_text()}"
                )
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"<LiveServer {self.url} pid={self.proc.pid} running={self.running}>"
