"""Helpers for the scale tests: real ``bankhub`` processes, a loopback webhook receiver, a
connect page driven over plain HTTP, and synchronous reads of the shared database.

Everything listens on 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bankhub.config import Environment, Settings
from bankhub.logins.models import Login
from bankhub.security.keyring import Keyring, open_keyring
from bankhub.sync.refresh import RETRYABLE
from bankhub.webhooks.models import WebhookDelivery
from tests.support.postgres import PostgresServer

SECRET_KEY = "scale-test-pepper-" + "k" * 40
CALLBACK = "http://localhost:2000/v2"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
T = TypeVar("T")


def today_utc() -> date:
    return datetime.now(UTC).date()


# --- the catalogue ---------------------------------------------------------------------------


def write_catalogue(directory: Path, history_days: int) -> Path:
    """The built-in catalogue with short sandbox histories, its media linked beside it."""
    builtin = Path(str(files("bankhub.catalogue").joinpath("services.json")))
    entries: list[dict[str, Any]] = json.loads(builtin.read_text(encoding="utf-8"))
    for entry in entries:
        entry.setdefault("params", {})["history_days"] = history_days
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "services.json"
    target.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    media = directory / "media"
    if not media.exists():
        media.symlink_to(builtin.parent / "media", target_is_directory=True)
    return target


def service_ids() -> list[int]:
    builtin = Path(str(files("bankhub.catalogue").joinpath("services.json")))
    entries = json.loads(builtin.read_text(encoding="utf-8"))
    return [int(e["id"]) for e in entries if e["connector"] == "sandbox"]


# --- processes ---------------------------------------------------------------------------------


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: no inherited ``BANKHUB_*``; test mode, a shared key, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env.update(
        {
            "BANKHUB_ENV": "test",
            "BANKHUB_SECRET_KEY": SECRET_KEY,
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


def bankhub_cli(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    """Run ``python -m bankhub ARGS`` to completion and return its stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "bankhub", *args],
        env=child_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"bankhub {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def create_app(env: Mapping[str, str], cwd: Path, webhook_url: str) -> dict[str, str]:
    out = bankhub_cli(
        ["apps", "create", "Scale app", "--webhook-url", webhook_url, "--json"], env, cwd
    )
    created: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return created


class Worker:
    """One ``python -m bankhub worker`` process, its output in a log file."""

    def __init__(
        self, env: Mapping[str, str], cwd: Path, log_path: Path, err_path: Path | None = None
    ) -> None:
        """``err_path``: standard error (the log lines) there instead of with the output."""
        self.log_path = log_path
        self.err_path = err_path
        self._log: IO[bytes] = log_path.open("ab")
        #: where this process's output starts in a log that an earlier process may have written
        self._start = self._log.tell()
        self._err: IO[bytes] | None = err_path.open("ab") if err_path is not None else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bankhub", "worker"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._err if self._err is not None else subprocess.STDOUT,
            env=child_env(env),
            cwd=cwd,
            start_new_session=True,
        )
        self.owner = ""

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_running(self, timeout: float = 30.0) -> str:
        """Wait for the banner ``bankhub worker <owner> running``; returns the owner."""
        pattern = re.compile(r"bankhub worker (\S+) running")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._log.flush()
            own = self.log_path.read_bytes()[self._start :].decode(errors="replace")
            found = pattern.findall(own)
            if found:
                self.owner = str(found[-1])
                return self.owner
            assert self.proc.poll() is None, f"the worker exited early:\n{self.output()}"
            time.sleep(0.02)
        raise AssertionError(f"the worker did not start within {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL as a last resort)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def errors(self) -> str:
        """Standard error, when kept apart (``err_path``)."""
        if self._err is None or self.err_path is None:
            return self.output()
        self._err.flush()
        return self.err_path.read_text(errors="replace")

    def close(self) -> None:
        self.kill()
        self._log.close()
        if self._err is not None:
            self._err.close()


# --- the webhook receiver ------------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    webhook_id: str
    event_type: str
    #: the signature checked out with the ``standardwebhooks`` package
    verified: bool


@dataclass
class HookReceiver:
    """A threaded HTTP server on 127.0.0.1 recording every POST and answering 200.

    It runs in this (the test's) process, so it outlives every worker that is killed.
    """

    hits: list[Hit] = field(default_factory=list)
    #: the endpoint's signing secret; every request is verified against it once it is known
    secret: str | None = None
    #: requests whose sender died before the whole body arrived
    cut: int = 0
    #: the first ``hold`` requests are answered only once ``released`` is set (a delivery in
    #: flight for as long as a test needs one); ``arrivals`` are their wall-clock times
    hold: int = 0
    released: threading.Event = field(default_factory=threading.Event)
    arrivals: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> HookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                payload = self.rfile.read(length)
                if len(payload) < length:
                    # The worker was killed mid-request: not a delivery (it never saw an
                    # answer), and the body is cut short, so there is nothing to verify.
                    with receiver._lock:
                        receiver.cut += 1
                    return
                verified = False
                if receiver.secret is not None:
                    try:
                        Webhook(receiver.secret).verify(payload, dict(self.headers.items()))
                        verified = True
                    except WebhookVerificationError:
                        verified = False
                hit = Hit(
                    self.path,
                    self.headers.get("webhook-id", ""),
                    self.headers.get("bankhub-event", ""),
                    verified,
                )
                with receiver._lock:
                    receiver.hits.append(hit)
                    receiver.arrivals.append(time.time())
                    held = len(receiver.hits) <= receiver.hold
                if held and not receiver.released.wait(timeout=120):
                    return
                body = b"ok"
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # a held request's sender was killed meanwhile

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def ids(self) -> list[str]:
        with self._lock:
            return [h.webhook_id for h in self.hits]

    def stop(self) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


# --- the connect page over HTTP ----------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    login_id: int
    secret: str
    service_id: int
    username: str


def _csrf(page: str) -> str:
    match = CSRF.search(page)
    assert match, page[:2000]
    return match.group(1)


def connect(
    base_url: str,
    creds: Mapping[str, str],
    service_id: int,
    username: str,
    customer: str,
    *,
    address: str | None = None,
) -> Connected:
    """One whole connect, every request to ``base_url`` (a connect session is per process).

    ``address``: the end user's, as a trusted proxy in front of bankhub names it
    (``X-Forwarded-For``), so that each user's page views count against their own address."""
    headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
    forwarded = {"x-forwarded-for": address} if address else {}
    # a browser's language (the sandbox bank's country would otherwise choose the page's)
    with httpx.Client(
        base_url=base_url,
        timeout=30.0,
        trust_env=False,
        headers={**forwarded, "Accept-Language": "en"},
    ) as client:
        made = client.post("/v2/customer", json={"identifier": customer}, headers=headers)
        assert made.status_code == 200, made.text
        customer_id = made.json()["data"]["customer_id"]
        token = client.post(
            "/v2/token",
            json={"customer_id": customer_id, "service_id": service_id, "callback_url": CALLBACK},
            headers=headers,
        )
        assert token.status_code == 200, token.text
        connect_url: str = token.json()["data"]["connect_url"]
        assert connect_url.startswith(base_url), (connect_url, base_url)
        opened = client.get(connect_url.removeprefix(base_url))
        assert opened.status_code == 303, opened.text
        page = client.get("/v2/connect/session").text
        client.post("/v2/connect/consent", data={"csrf": _csrf(page), "action": "agree"})
        page = client.get("/v2/connect/session").text
        form = {"csrf": _csrf(page), "username": username, "password": "pass_good"}
        client.post("/v2/connect/credentials", data=form)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = client.get("/v2/connect/session")
            location = shown.headers.get("location", "")
            if shown.status_code == 303 and location.startswith(CALLBACK):
                payload: dict[str, Any] = json.loads(
                    unquote(urlsplit(location).path.split("/")[-1])
                )
                assert payload["status"] == "success", payload
                return Connected(int(payload["login_id"]), payload["secret"], service_id, username)
            # the progress pages: the bank still answering the login, then the first fetch
            progress = ("Fetching your accounts", "is taking a moment")
            assert any(text in shown.text for text in progress), shown.text[:2000]
            time.sleep(0.02)
    raise AssertionError("the connect flow did not finish within 60 s")


# --- the database, read synchronously ------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """A database on the throwaway PostgreSQL server set up as docs/operations.md deploys one."""

    #: the runtime role's: bankhub's processes use it, under row-level security (S14)
    runtime_url: str
    #: the tables' owner's: migrations and the operator's CLI
    owner_url: str
    #: the superuser's: the test reads everything with it
    superuser_url: str


@contextlib.contextmanager
def deployed_database(
    server: PostgresServer, cwd: Path, env: Mapping[str, str]
) -> Iterator[Deployed]:
    """A fresh database owned by its own role, migrated, with a runtime role granted by
    ``bankhub db create-app-role``; dropped with both roles afterwards."""
    suffix = uuid.uuid4().hex[:12]
    name, owner, runtime = f"t_{suffix}", f"owner_{suffix}", f"app_{suffix}"
    server.run_sql(f"CREATE ROLE {owner} LOGIN NOSUPERUSER CREATEROLE")
    server.run_sql(f"CREATE DATABASE {name} OWNER {owner}")
    made = Deployed(
        server.url_for(name, runtime), server.url_for(name, owner), server.url_for(name)
    )
    try:
        operator = {**env, "BANKHUB_MIGRATION_DATABASE_URL": made.owner_url}
        operator["BANKHUB_DATABASE_URL"] = made.runtime_url
        bankhub_cli(["db", "create-app-role", runtime], operator, cwd)
        yield made
    finally:
        server.drop_database(name)
        server.run_sql(f"DROP ROLE IF EXISTS {runtime}")
        server.run_sql(f"DROP ROLE IF EXISTS {owner}")


def database(url: str) -> Callable[[Callable[[AsyncSession], Any]], Any]:
    """``db(fn)`` runs ``await fn(session)`` in one committed unit of work, on a fresh loop."""

    def run(work: Callable[[AsyncSession], Any]) -> Any:
        async def go() -> Any:
            engine = create_async_engine(url, poolclass=NullPool)
            try:
                async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                    result = await work(session)
                    await session.commit()
                    return result
            finally:
                await engine.dispose()

        return asyncio.run(go())

    return run


async def keyring_of(session: AsyncSession, data_dir: Path) -> Keyring:
    """The data keyring of the processes under test, to open what they sealed (transactions'
    details, accounts' bank ids): in test mode the KEK derives from the shared secret key."""
    settings = Settings(env=Environment.TEST, secret_key=SECRET_KEY, data_dir=data_dir)
    return await open_keyring(settings, session)


def idle(db: Callable[[Callable[[AsyncSession], Any]], Any], *, deliveries: bool = False) -> bool:
    """No login due, no sync lease held (and with ``deliveries``, no delivery pending)."""

    async def work(session: AsyncSession) -> bool:
        now = datetime.now(UTC)
        busy = await session.scalar(
            select(func.count())
            .select_from(Login)
            .where(
                (Login.sync_lease_owner.is_not(None))
                | (
                    Login.active.is_(True)
                    & Login.status.in_(RETRYABLE)
                    & (Login.next_sync_at <= now)
                )
            )
        )
        if busy or not deliveries:
            return busy == 0
        pending = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status != "delivered")
        )
        return pending == 0

    done: bool = db(work)
    return done


def mark_all_due(db: Callable[[Callable[[AsyncSession], Any]], Any]) -> None:
    """Every login due now. One statement over every login meets the workers' batches, which
    hold the rows of one app's refreshes until they commit: PostgreSQL may find a deadlock and
    abort this statement, which is then sent again (as any client of a busy database would)."""

    async def work(session: AsyncSession) -> None:
        await session.execute(update(Login).values(next_sync_at=datetime.now(UTC)))

    for attempt in range(5):
        try:
            db(work)
            return
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != "40P01" or attempt == 4:
                raise


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'bankhub.sqlite3').resolve()}"


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.25) -> float:
    """Poll ``check`` until it holds; returns the seconds it took. Fails after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"{what}: not reached within {timeout:.0f} s")


def overlapping(intervals: Iterable[tuple[datetime, datetime, str]]) -> list[str]:
    """Intervals (``start, end, who``) that start before an earlier-starting one has ended."""
    problems: list[str] = []
    latest: tuple[datetime, datetime, str] | None = None
    for start, end, who in sorted(intervals):
        if latest is not None and start < latest[1]:
            problems.append(f"[{start}, {end}] by {who} overlaps {latest[:2]} by {latest[2]}")
        if latest is None or end > latest[1]:
            latest = (start, end, who)
    return problems


async def login_states(session: AsyncSession) -> dict[int, tuple[int, dict[str, Any]]]:
    """Each login's service and connector state, decrypted as the bankhub processes do."""
    from sqlalchemy import select

    from bankhub.logins.models import Login
    from bankhub.security.crypto import derive_key
    from bankhub.security.keyring import Keyring, LocalKek
    from bankhub.sync.engine import login_state

    secret = SECRET_KEY.encode()
    keyring = Keyring([LocalKek(derive_key(secret, "kek"))], secret)
    await keyring.load(session)
    logins = (await session.execute(select(Login))).scalars()
    return {login.id: (login.service_id, login_state(keyring, login)) for login in logins}


@dataclass
class Store:
    """The database a scale test's processes share, and the environment that names it."""

    kind: str
    data_dir: Path
    url: str
    env: dict[str, str]
