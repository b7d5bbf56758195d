"""The SFTP statement drop, driven by asyncssh's own SFTP client over loopback.

Each test runs the drop in process, on the test's event loop, beside the harness's API (the
harness is per test, so each test starts its listener: an in-process bind on an ephemeral
port, a few milliseconds).
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bankhub.audit.models import AuditEntry
from bankhub.cli import cli
from bankhub.db import tenancy
from bankhub.events.models import Event
from bankhub.hub import Hub
from bankhub.jobs.runner import Runner
from bankhub.security.network import AbuseGuard
from bankhub.sftp import command, hostkey, pinning, server, services
from bankhub.sftp.models import DroppedFile
from bankhub.sftp.server import Collaborators, DropServer
from tests.conftest import Harness
from tests.jobs.test_outbox import add_endpoint, verified
from tests.signatures.key_host import key_host
from tests.signatures.test_key_sources import add_source, sweep
from tests.statements.corpus import read
from tests.statements.uploads import new_customer, upload
from tests.support.raw_http import Receiver

CORPUS = [
    # (corpus file, name dropped, [(currency, transactions)]) as tests/statements counts them
    ("ofx/bank_medium.ofx", "bank_medium.ofx", [("CAD", 3)]),
    ("camt/camt053.v2.multi.statement.xml", "camt053.xml", [("EUR", 2)]),
    ("mt940/ASNB/mt940.txt", "asn.sta", [("EUR", 8)]),
    ("csv/ing.csv", "ing.csv", [("EUR", 20)]),
]
BLOCKING = {"block_enabled": True, "block_failures": 3}


@dataclass
class Drop:
    h: Harness
    server: DropServer
    port: int
    guard: AbuseGuard

    async def app_key(self, creds: dict[str, str] | None = None) -> asyncssh.SSHKey:
        """A new Ed25519 key registered for the app through the API (master credential)."""
        key = asyncssh.generate_private_key("ssh-ed25519")
        line = key.export_public_key("openssh").decode()
        headers = (
            self.h.headers()
            if creds is None
            else {
                "client-id": creds["client_id"],
                "service-secret": creds["service_secret"],
                "content-type": "application/json",
            }
        )
        answer = await self.h.client.post(
            "/v2/signature/key", headers=headers, json={"public_key": line}
        )
        assert answer.status_code == 200, answer.text
        return key

    async def connect(
        self, key: asyncssh.SSHKey | None, username: str | None = None, **options: Any
    ) -> asyncssh.SSHClientConnection:
        pinned = asyncssh.import_known_hosts(
            f"[127.0.0.1]:{self.port} " + self.server.host_key.export_public_key("openssh").decode()
        )
        return await asyncssh.connect(
            "127.0.0.1",
            self.port,
            username=username or self.h.creds["client_id"],
            client_keys=[key] if key is not None else [],
            known_hosts=pinned,
            agent_path=None,
            config=None,
            **options,
        )


@asynccontextmanager
async def started(h: Harness) -> AsyncIterator[Drop]:
    hub = h.hub
    guard = AbuseGuard(hub.settings, hub.db, hub.clock)
    server = DropServer(Collaborators(hub.settings, hub.db, hub.engine, hub.clock, guard))
    port = await server.start("127.0.0.1", 0)
    try:
        yield Drop(h, server, port, guard)
    finally:
        await server.close()


@pytest.fixture
async def drop(harness: Harness) -> AsyncIterator[Drop]:
    async with started(harness) as running:
        yield running


async def put(sftp: asyncssh.SFTPClient, path: str, data: bytes) -> None:
    async with sftp.open(path, "wb") as file:
        await file.write(data)


async def result(sftp: asyncssh.SFTPClient, path: str) -> Any:
    async with sftp.open(path + ".result.json", "rb") as file:
        return json.loads(await file.read())


async def stored_row(h: Harness, name: str) -> DroppedFile:
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            found = await session.execute(select(DroppedFile).where(DroppedFile.name == name))
            return found.scalar_one()


async def count(h: Harness, model: Any) -> int:
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            return int(
                (await session.execute(select(func.count()).select_from(model))).scalar_one()
            )


async def test_corpus_files_are_imported_as_the_api_imports_them(
    drop: Drop, receiver: Receiver
) -> None:
    h = drop.h
    _, secret = await add_endpoint(h, receiver.url + "/hooks", ["statement.imported"])
    await new_customer(h, "alice")
    twin = await new_customer(h, "alice-over-the-api")
    key = await drop.app_key()
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir("/inbox") == [".", ".."]
        await sftp.mkdir("/inbox/alice")
        results: dict[str, Any] = {}
        for corpus, name, accounts in CORPUS:
            await put(sftp, f"/inbox/alice/{name}", read(corpus))
            if name == "bank_medium.ofx":  # the file that opens the login: its secret held
                unread = await stored_row(h, name)  # in memory only, never stored (S1)
                assert '"secret":null' in unread.result
            dropped = results[name] = await result(sftp, f"/inbox/alice/{name}")
            assert [(a["currency"], a["imported"]) for a in dropped["data"]["accounts"]] == (
                accounts
            )
            # the same counts as the same file posted to POST /v2/statement
            posted = (await upload(h, twin, name, read(corpus))).json()
            assert [a["imported"] for a in posted["data"]["accounts"]] == [
                a["imported"] for a in dropped["data"]["accounts"]
            ]
            assert set(dropped["data"]) == set(posted["data"])
        # the login-secret of the login the first file opened reads the import back; it is
        # shown by the first complete reading of the result, then erased
        first = results["bank_medium.ofx"]
        assert first["data"]["login_created"] is True
        assert len(first["data"]["secret"]) == 36
        shown_again = await result(sftp, "/inbox/alice/bank_medium.ofx")
        assert shown_again["data"]["secret"] is None
        assert shown_again["data"]["accounts"] == first["data"]["accounts"]
        read_back = await h.client.get(
            "/v2/transaction", headers=h.headers(login_secret=first["data"]["secret"])
        )
        assert read_back.status_code == 200
        # a second upload of the same file adds nothing
        await put(sftp, "/inbox/alice/asn.sta", read("mt940/ASNB/mt940.txt"))
        again = await result(sftp, "/inbox/alice/asn.sta")
        assert [a["imported"] for a in again["data"]["accounts"]] == [0]
        assert again["data"]["secret"] is None
        assert await sftp.listdir("/inbox") == [".", "..", "alice"]
        names = sorted(await sftp.listdir("/inbox/alice"))
        assert "ing.csv" in names
        assert "ing.csv.result.json" in names
        assert (await sftp.stat("/inbox/alice/ing.csv")).size == len(read("csv/ing.csv"))
    row = await stored_row(h, "bank_medium.ofx")
    assert first["data"]["secret"] not in row.result
    assert drop.server.unshown == {}

    tally = await Runner(h.hub).run_once()
    assert tally.deliveries == 2 * len(CORPUS) + 1
    bodies = [verified(secret, request) for request in receiver.received]
    assert {request.headers["bankhub-event"] for request in receiver.received} == {
        "statement.imported"
    }
    by_source = sorted((b["source"], b["file_name"], b["imported"]) for b in bodies)
    assert ("sftp", "ing.csv", 20) in by_source
    assert ("api", "ing.csv", 20) in by_source
    assert ("sftp", "asn.sta", 0) in by_source
    sftp_ofx = next(
        b for b in bodies if b["source"] == "sftp" and b["file_name"] == "bank_medium.ofx"
    )
    assert sftp_ofx["login_id"] == first["data"]["login_id"]
    assert sftp_ofx["accounts"] == [
        {"id": a["id"], "imported": a["imported"]} for a in first["data"]["accounts"]
    ]

    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            entries = list(
                (
                    await session.execute(
                        select(AuditEntry).where(AuditEntry.action == "statement.dropped")
                    )
                ).scalars()
            )
    assert len(entries) == len(CORPUS) + 1
    ing = next(e for e in entries if e.detail["file_name"] == "ing.csv")
    assert ing.detail["rows"] == 20
    assert len(ing.detail["sha256"]) == 64
    assert ing.detail["imported"] is True


async def test_an_unreadable_file_is_refused_with_the_apis_error(drop: Drop) -> None:
    h = drop.h
    await new_customer(h, "bob")
    key = await drop.app_key()
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPError, match="was not imported"):
            await put(sftp, "/inbox/bob/notes.txt", b"this is no statement\n")
        refused = await result(sftp, "/inbox/bob/notes.txt")
        assert refused["error"] == "DataInvalid"
        assert set(refused) == {"error", "message", "extra"}
        api = await upload(h, await new_customer(h, "bob2"), "notes.txt", b"this is no statement\n")
        assert api.json()["message"] == refused["message"]
        # an unknown customer is refused with a clear status
        with pytest.raises(asyncssh.SFTPNoSuchFile, match="no customer with identifier 'carol'"):
            await put(sftp, "/inbox/carol/a.ofx", read("ofx/bank_medium.ofx"))
        with pytest.raises(asyncssh.SFTPNoSuchFile, match="no customer"):
            await sftp.mkdir("/inbox/carol")
    assert await count(h, Event) == 0


async def test_another_app_sees_nothing_of_the_first(drop: Drop) -> None:
    h = drop.h
    await new_customer(h, "alice")
    key = await drop.app_key()
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        await put(sftp, "/inbox/alice/a.sta", read("mt940/ASNB/mt940.txt"))
    other = await h.new_app("other")
    other_key = await drop.app_key(other)
    async with (
        await drop.connect(other_key, other["client_id"]) as conn,
        conn.start_sftp_client() as sftp,
    ):
        assert await sftp.listdir("/inbox") == [".", ".."]
        for path in ("/inbox/alice/a.sta.result.json", "/inbox/alice/a.sta"):
            with pytest.raises(asyncssh.SFTPNoSuchFile, match="no customer"):
                await sftp.stat(path)
        with pytest.raises(asyncssh.SFTPNoSuchFile, match="no customer"):
            await put(sftp, "/inbox/alice/b.sta", read("mt940/ASNB/mt940.txt"))
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.remove("/inbox/alice/a.sta")
    # the first app's key is not the other app's login, nor the other way round
    with pytest.raises(asyncssh.PermissionDenied):
        await drop.connect(key, other["client_id"])
    with pytest.raises(asyncssh.PermissionDenied):
        await drop.connect(other_key)
    assert await count(h, DroppedFile) == 1


@pytest.mark.parametrize("harness", [BLOCKING], indirect=True)
async def test_wrong_revoked_and_password_logins_are_refused_and_block(drop: Drop) -> None:
    key = await drop.app_key()
    async with await drop.connect(key):
        pass
    with pytest.raises(asyncssh.PermissionDenied):
        await drop.connect(asyncssh.generate_private_key("ssh-ed25519"))
    with pytest.raises(asyncssh.PermissionDenied):
        await drop.connect(None, password="service-secret", preferred_auth="password")
    with pytest.raises(asyncssh.PermissionDenied):
        await drop.connect(None, preferred_auth="keyboard-interactive")
    await drop.server.settled()
    # three failures in a row: the address is blocked, the right key is refused too
    assert await drop.guard.blocked_until("127.0.0.1") is not None
    with pytest.raises(asyncssh.PermissionDenied, match="blocked"):
        await drop.connect(key)


@pytest.mark.parametrize("harness", [BLOCKING], indirect=True)
async def test_a_revoked_key_no_longer_logs_in(drop: Drop) -> None:
    h = drop.h
    key = await drop.app_key()
    async with await drop.connect(key):
        pass
    [listed] = (await h.client.get("/v2/signature/key", headers=h.headers())).json()["data"]
    revoked = await h.client.delete(f"/v2/signature/key/{listed['id']}", headers=h.headers())
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(asyncssh.PermissionDenied):
        await drop.connect(key)


async def test_no_shell_no_exec_no_forwarding(drop: Drop) -> None:
    key = await drop.app_key()
    async with await drop.connect(key) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run("id", check=True)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_process()
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_process(subsystem="netconf")
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", drop.port)
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_unix_connection("/tmp/socket")
        # sftp itself works on the same connection
        async with conn.start_sftp_client() as sftp:
            assert await sftp.listdir("/") == [".", "..", "inbox"]


async def test_path_escapes_and_links_are_refused(drop: Drop) -> None:
    h = drop.h
    await new_customer(h, "alice")
    key = await drop.app_key()
    ofx = read("ofx/bank_medium.ofx")
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        for path in (
            "/inbox/alice/../../etc/passwd",
            "../x.ofx",
            "/inbox/alice/\uff0e\uff0e/x.ofx",  # fullwidth full stops: '..' once normalised
        ):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match=r"'\.\.' is not allowed"):
                await put(sftp, path, ofx)
        for path in (
            "/inbox/alice/a\\b.ofx",
            "/inbox/alice/a\uff0fb.ofx",  # fullwidth solidus
            "/inbox/alice/a\x00b.ofx",
        ):
            with pytest.raises(asyncssh.SFTPError):
                await put(sftp, path, ofx)
        for path in ("/etc/passwd", "/x.ofx", "/inbox/x.ofx", "/inbox/alice/deeper/x.ofx"):
            with pytest.raises(asyncssh.SFTPNoSuchFile, match="nothing here but /inbox"):
                await put(sftp, path, ofx)
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.mkdir("/elsewhere")
        await put(sftp, "/inbox/alice/a.ofx", ofx)
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="links are not offered"):
            await sftp.symlink("/inbox/alice/a.ofx.result.json", "/inbox/alice/l")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="links are not offered"):
            await sftp.link("/inbox/alice/a.ofx", "/inbox/alice/hard")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="links are not offered"):
            await sftp.readlink("/inbox/alice/a.ofx")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="result files"):
            await put(sftp, "/inbox/alice/x.result.json", b"{}")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="not kept once imported"):
            await sftp.open("/inbox/alice/a.ofx", "rb")
        await sftp.rename("/inbox/alice/a.ofx", "/inbox/alice/b.ofx")
        assert sorted(await sftp.listdir("/inbox/alice")) == [
            ".",
            "..",
            "b.ofx",
            "b.ofx.result.json",
        ]
        await sftp.remove("/inbox/alice/b.ofx.result.json")
        assert await sftp.listdir("/inbox/alice") == [".", ".."]
    # nothing a client sent is on this host's disk
    assert not [p for p in Path(h.hub.settings.data_dir).rglob("*") if p.suffix == ".ofx"]  # noqa: ASYNC240 - a test's tmp dir


@pytest.mark.parametrize("harness", [{"sftp_max_file_bytes": 4096}], indirect=True)
async def test_an_oversize_file_is_stopped_while_writing(drop: Drop) -> None:
    h = drop.h
    await new_customer(h, "alice")
    key = await drop.app_key()
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        file = await sftp.open("/inbox/alice/big.ofx", "wb")
        await file.write(b"x" * 4000)
        # the write that passes the limit is refused, and every one after it
        with pytest.raises(asyncssh.SFTPError, match="over the 4096 bytes"):
            await file.write(b"y" * 200, 4000)
        with pytest.raises(asyncssh.SFTPError, match="over the 4096 bytes"):
            await file.write(b"z", 10)
        with pytest.raises(asyncssh.SFTPError, match="nothing of it is imported"):
            await file.close()
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.stat("/inbox/alice/big.ofx.result.json")
    assert await count(h, DroppedFile) == 0
    assert await count(h, Event) == 0


@pytest.mark.parametrize("harness", [{"sftp_max_files": 2}], indirect=True)
async def test_the_count_quota(drop: Drop) -> None:
    h = drop.h
    await new_customer(h, "alice")
    key = await drop.app_key()
    mt940 = read("mt940/ASNB/mt940.txt")
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        await put(sftp, "/inbox/alice/1.sta", mt940)
        await put(sftp, "/inbox/alice/2.sta", mt940)
        with pytest.raises(asyncssh.SFTPError, match="keeps 2 files"):
            await put(sftp, "/inbox/alice/3.sta", mt940)
        await put(sftp, "/inbox/alice/2.sta", mt940)  # the same name replaces: allowed
        await sftp.remove("/inbox/alice/1.sta")
        await put(sftp, "/inbox/alice/3.sta", mt940)
    assert await count(h, DroppedFile) == 2


async def test_erasing_the_customer_erases_their_files(drop: Drop) -> None:
    h = drop.h
    customer = await new_customer(h, "alice")
    key = await drop.app_key()
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        await put(sftp, "/inbox/alice/a.sta", read("mt940/ASNB/mt940.txt"))
    assert await count(h, Event) == 2  # transactions.new and statement.imported
    erased = await h.client.request(
        "DELETE", "/v2/customer", headers=h.headers(), json={"customer_id": customer}
    )
    assert erased.status_code == 200, erased.text
    assert await count(h, DroppedFile) == 0
    assert await count(h, Event) == 1  # the login.deleted event only
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir("/inbox") == [".", ".."]
        # a customer erased while their file is written: refused, nothing kept
        late = await new_customer(h, "late")
        file = await sftp.open("/inbox/late/a.sta", "wb")
        await file.write(read("mt940/ASNB/mt940.txt"))
        gone = await h.client.request(
            "DELETE", "/v2/customer", headers=h.headers(), json={"customer_id": late}
        )
        assert gone.status_code == 200, gone.text
        with pytest.raises(asyncssh.SFTPFailure, match="was not imported"):
            await file.close()
    assert await count(h, DroppedFile) == 0


async def test_the_host_key_is_kept_and_its_fingerprint_printed(
    drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = drop.h.hub.settings
    path = pinning.key_path(settings.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = DropServer(drop.server.parts)
    assert again.fingerprint == drop.server.fingerprint
    assert pinning.published_fingerprint(settings.data_dir) == drop.server.fingerprint
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_ENV", "BANKHUB_KEK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(settings.data_dir))
    printed = CliRunner().invoke(cli, ["sftp", "--fingerprint"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.strip() == drop.server.fingerprint
    # a client pinning that key connects; a changed host key is refused by the client
    key = await drop.app_key()
    async with await drop.connect(key):
        pass
    path.chmod(0o644)
    with pytest.raises(hostkey.HostKeyError, match="chmod 600"):
        DropServer(drop.server.parts)


@pytest.mark.postgres
async def test_the_drop_works_as_the_runtime_role(app_role_harness: Harness) -> None:
    """S14: logins, listings, the import and its result under row-level security."""
    h = app_role_harness
    async with started(h) as drop:
        await new_customer(h, "alice")
        key = await drop.app_key()
        async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
            await put(sftp, "/inbox/alice/a.sta", read("mt940/ASNB/mt940.txt"))
            dropped = await result(sftp, "/inbox/alice/a.sta")
            assert [a["imported"] for a in dropped["data"]["accounts"]] == [8]
            assert await sftp.listdir("/inbox") == [".", "..", "alice"]
        other = await h.new_app("other")
        other_key = await drop.app_key(other)
        async with (
            await drop.connect(other_key, other["client_id"]) as conn,
            conn.start_sftp_client() as sftp,
        ):
            assert await sftp.listdir("/inbox") == [".", ".."]


async def test_an_internal_failure_is_not_told_to_the_client(
    drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_customer(drop.h, "alice")
    key = await drop.app_key()

    async def broken(*args: object) -> None:
        raise RuntimeError("SELECT result FROM sftp_files WHERE app_id = 1")

    monkeypatch.setattr(services, "files", broken)
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPFailure) as failed:
            await sftp.listdir("/inbox/alice")
    assert failed.value.reason == "bankhub could not complete this operation; nothing was changed"


async def test_bankhub_sftp_serves_until_stopped(harness: Harness) -> None:
    """``bankhub sftp``'s own loop: its hub, the address block in the shared store, the
    listener, and a clean stop."""
    h = harness
    lines: list[str] = []
    stop = asyncio.Event()
    listening = asyncio.Event()

    def say(line: str) -> None:
        lines.append(line)
        listening.set()

    def build() -> Hub:
        return Hub.build(h.hub.settings, clock=h.clock)

    serving = asyncio.create_task(command.serve(build, "127.0.0.1", 0, say, stop))
    await listening.wait()
    port = int(lines[0].rsplit(":", 1)[1])
    assert lines[1].startswith("host key SHA256:")
    # the client pins the key under the data dir: the one the command serves with
    drop = Drop(
        h,
        DropServer(Collaborators(h.hub.settings, h.hub.db, h.hub.engine, h.clock, None)),
        port,
        AbuseGuard(h.hub.settings, h.hub.db, h.clock),
    )
    await new_customer(h, "alice")
    key = await drop.app_key()
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        await put(sftp, "/inbox/alice/a.sta", read("mt940/ASNB/mt940.txt"))
        dropped = await result(sftp, "/inbox/alice/a.sta")
    assert [a["imported"] for a in dropped["data"]["accounts"]] == [8]
    stop.set()
    await serving
    with pytest.raises(ConnectionRefusedError):
        await drop.connect(key)


@pytest.mark.parametrize(
    ("algorithm", "key_size"), [("ecdsa-sha2-nistp256", None), ("ssh-rsa", 3072)]
)
async def test_p256_and_rsa_keys_log_in(drop: Drop, algorithm: str, key_size: int | None) -> None:
    key = (
        asyncssh.generate_private_key(algorithm, key_size=key_size)
        if key_size
        else asyncssh.generate_private_key(algorithm)
    )
    answer = await drop.h.client.post(
        "/v2/signature/key",
        headers=drop.h.headers(),
        json={"public_key": key.export_public_key("openssh").decode()},
    )
    assert answer.status_code == 200, answer.text
    async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir("/") == [".", "..", "inbox"]


async def test_a_key_synced_from_the_partners_keys_url_logs_in_until_removed_there(
    drop: Drop,
) -> None:
    """The partner keeps its key where GitHub would serve it (a ``.keys`` file on a loopback
    host): bankhub syncs it, the SFTP client logs in with it and drops a corpus file that is
    imported with its exact count; once the key is gone from the file, one sync later the same
    key no longer logs in."""
    h = drop.h
    key = asyncssh.generate_private_key("ssh-ed25519")
    line = key.export_public_key("openssh").decode().strip()
    with key_host() as host:
        host.keys_file("/partner.keys", line + " laptop")
        source = await add_source(h, host.url("/partner.keys"))
        assert (source["state"], source["keys"]) == ("ok", 1)
        await new_customer(h, "synced-key-user")
        corpus, name, accounts = CORPUS[2]
        async with await drop.connect(key) as conn, conn.start_sftp_client() as sftp:
            await sftp.mkdir("/inbox/synced-key-user")
            await put(sftp, f"/inbox/synced-key-user/{name}", read(corpus))
            outcome = await result(sftp, f"/inbox/synced-key-user/{name}")
        assert [(a["currency"], a["imported"]) for a in outcome["data"]["accounts"]] == accounts

        host.keys_file("/partner.keys")  # the partner removed the key there
        assert await sweep(h) == {"ok": 1}
        with pytest.raises(asyncssh.PermissionDenied):
            await drop.connect(key)


async def test_open_uploads_are_bounded_per_app_and_in_bytes_over_all_connections(
    drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads are held in memory until closed: an app cannot hold more than
    OPEN_UPLOADS_PER_APP of them over several connections, the drop refuses a write that
    would hold more than MAX_HELD_BYTES in all, and what a cut connection held is freed."""
    h = drop.h
    await new_customer(h, "alice")
    key = await drop.app_key()
    first = await drop.connect(key)
    second = await drop.connect(key)
    one = await first.start_sftp_client()
    two = await second.start_sftp_client()
    held = [await one.open(f"/inbox/alice/{i}.sta", "wb") for i in range(server.OPEN_UPLOADS)]
    held += [
        await two.open(f"/inbox/alice/{i}.sta", "wb")
        for i in range(server.OPEN_UPLOADS, server.OPEN_UPLOADS_PER_APP)
    ]
    third = await drop.connect(key)
    three = await third.start_sftp_client()
    with pytest.raises(asyncssh.SFTPFailure, match="per app"):
        await three.open("/inbox/alice/more.sta", "wb")

    monkeypatch.setattr(server, "MAX_HELD_BYTES", 1000)
    await held[0].write(b"x" * 600)
    assert drop.server.held_bytes == 600
    with pytest.raises(asyncssh.SFTPFailure, match="try this write again"):
        await held[1].write(b"y" * 600)
    await held[1].write(b"y" * 400)  # within what is left
    assert drop.server.held_bytes == 1000

    # a connection cut with uploads open frees their bytes and slots; nothing is imported
    first.close()
    await first.wait_closed()
    second.close()
    await second.wait_closed()
    for _ in range(100):
        if drop.server.held_bytes == 0 and not +drop.server.open_by_app:
            break
        await asyncio.sleep(0.01)
    assert drop.server.held_bytes == 0
    assert not +drop.server.open_by_app
    await asyncio.sleep(0.2)  # what a cut upload's import would take on this loop, and more
    assert await count(h, DroppedFile) == 0  # the cut uploads were not imported, even in part
    monkeypatch.undo()
    await put(three, "/inbox/alice/after.sta", read("mt940/ASNB/mt940.txt"))
    third.close()
    assert await count(h, DroppedFile) == 1
