"""A throwaway Redis server for tests.

``RedisServer`` starts Debian's ``redis-server`` in a fresh temporary directory, listening on a
free port of 127.0.0.1 and on a unix socket in that directory, with persistence off, and removes
everything again on ``stop()``. It can be stopped and started again on the same socket and port
(a store that goes away while bankhub serves, then comes back).

    server = RedisServer().start()
    server.url          # redis://127.0.0.1:PORT/0
    server.socket_url   # redis+unix:///tmp/bankhub-redis-.../redis.sock
    server.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.support.postgres import free_port

START_TIMEOUT = 10.0


class RedisError(RuntimeError):
    """The throwaway server could not be set up; the message includes its log."""


def find_server() -> str | None:
    """The ``redis-server`` binary on PATH (Debian's ``redis-server`` package), or None."""
    return shutil.which("redis-server")


class RedisServer:
    def __init__(self, binary: str | None = None, host: str = "127.0.0.1") -> None:
        self.binary = binary
        self.host = host
        self.port = 0
        self.tmpdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- public API --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def socket_path(self) -> Path:
        assert self.tmpdir is not None, "server not started"
        return self.tmpdir / "redis.sock"

    @property
    def socket_url(self) -> str:
        return f"redis+unix://{self.socket_path}"

    @property
    def logfile(self) -> Path:
        assert self.tmpdir is not None, "server not started"
        return self.tmpdir / "redis.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> RedisServer:
        """Start (or start again, on the same socket and, when still free, the same port)."""
        if self.running:
            return self
        if self.binary is None:
            self.binary = find_server()
        if self.binary is None:
            raise RedisError("redis-server not found on PATH; install Debian's redis-server")
        if self.tmpdir is None:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="bankhub-redis-"))
            atexit.register(self.stop)
        for attempt in range(1, 4):
            if self.port == 0 or attempt > 1:
                self.port = free_port(self.host)
            try:
                self._spawn()
                return self
            except RedisError:
                # most likely someone took the port between free_port() and the bind
                self._kill()
                if attempt == 3:
                    raise
        return self

    def halt(self) -> None:
        """Stop the server but keep its directory, socket path and port for ``start()``."""
        self._kill()

    def stop(self) -> None:
        """Stop the server and delete its directory. Idempotent."""
        self._kill()
        tmpdir, self.tmpdir = self.tmpdir, None
        atexit.unregister(self.stop)
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def command(self, *args: str) -> str:
        """One command over the socket, in RESP; the first line of the answer."""
        return _command(self.socket_path, *args)

    def flush(self) -> None:
        """Forget every key: each test starts from an empty store."""
        assert self.command("FLUSHALL") == "+OK"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self.port}" if self.running else "stopped"
        return f"<RedisServer {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        assert self.binary is not None
        assert self.tmpdir is not None
        argv = [
            self.binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.tmpdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.logfile),
        ]
        self.proc = subprocess.Popen(
            argv,
            cwd=self.tmpdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisError(f"redis-server exited with {self.proc.returncode}{self._tail()}")
            try:
                if _command(self.socket_path, "PING") == "+PONG" and self._port_answers():
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RedisError(f"redis-server did not answer within {START_TIMEOUT:.0f} s{self._tail()}")

    def _port_answers(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _tail(self) -> str:
        with contextlib.suppress(OSError, AssertionError):
            lines = self.logfile.read_text(errors="replace").splitlines()
            return "\n--- redis.log (tail) ---\n" + "\n".join(lines[-20:])
        return ""


def _command(path: Path, *args: str) -> str:
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(path))
        sock.sendall(request.encode())
        answer = b""
        while not answer.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode().split("\r\n", 1)[0]
