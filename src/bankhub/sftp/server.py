"""The SFTP drop's server: asyncssh's SSH transport and SFTP protocol, bankhub's rules.

An app logs in with its ``client-id`` as user name and one of its active signature keys
(public-key authentication only; asyncssh checks the signature, the key is compared whole with
the stored one). A session offers the ``sftp`` subsystem and nothing else: no shell, no exec
(so no scp), no port forwarding of any kind, no agent or X11 forwarding.

The tree each app sees is virtual: nothing a client names is ever looked up on this host's
file system. ``/inbox/<customer identifier>/<file>`` uploads are held in memory (up to the
size limit, enforced as they are written) and imported when the client closes them, with the
calls ``POST /v2/statement`` makes; ``<file>.result.json`` beside it is the API's answer. Only
the outcome is kept (``sftp_files``), so erasing a customer erases their files with them.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncssh
import msgspec
from asyncssh import SFTPAttrs, SFTPName
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import Clock
from bankhub.config import Settings
from bankhub.customers.models import Customer
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.errors import DomainError
from bankhub.security.network import AbuseGuard, AuthOutcome
from bankhub.sftp import hostkey, services
from bankhub.sftp.models import DroppedFile
from bankhub.statements.importer import ImportOutcome, parse_file
from bankhub.statements.schemas import StatementImportEnvelope, import_out
from bankhub.sync.engine import SyncEngine

log = logging.getLogger("bankhub.sftp")
T = TypeVar("T")

INBOX = "inbox"
RESULT_SUFFIX = ".result.json"
#: uploads one connection may have open at once (each is held in memory until it closes)
OPEN_UPLOADS = 4
#: uploads one app may have open at once over all its connections
OPEN_UPLOADS_PER_APP = 8
#: the bytes of open uploads the drop holds in memory at once, over every app: a write that
#: would pass it is refused (the client may try again shortly), so many connections of many
#: apps cannot together exhaust the server's memory
MAX_HELD_BYTES = 256 * 1024 * 1024
#: login-secrets held for result files not read yet (each a few dozen bytes)
MAX_UNSHOWN = 10_000
#: the longest file name (the ``sftp_files.name`` column)
MAX_NAME = 200


@dataclass(slots=True)
class Collaborators:
    settings: Settings
    db: Database
    engine: SyncEngine
    clock: Clock
    #: the address block of the API (None when blocking is off)
    guard: AbuseGuard | None


@dataclass(frozen=True, slots=True)
class Principal:
    app_id: int
    client_id: str
    key_id: str
    address: str


class _Login(asyncssh.SSHServer):
    """One SSH connection: authentication and the refusal of everything but SFTP."""

    def __init__(self, drop: DropServer) -> None:
        self.drop = drop
        self.address = "unknown"
        self.conn: asyncssh.SSHServerConnection | None = None
        self.principal: Principal | None = None
        self.tried = False
        self.counted = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername")
        if peer:
            self.address = str(peer[0])
        self.conn = conn
        self.drop.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # a client that gave up without a key bankhub could judge (a password or
        # keyboard-interactive attempt, a signature that did not verify) failed once
        if self.tried and self.principal is None and not self.counted:
            self.drop.count_failure(self.address)
        self.drop.live.discard(self)
        self.drop.wake()

    async def begin_auth(self, username: str) -> bool:
        self.tried = True
        guard = self.drop.parts.guard
        if guard is not None:
            until = await guard.blocked_until(self.address)
            if until is not None:
                log.info("sftp: refused %s, blocked until %s", self.address, until.isoformat())
                self.counted = True  # a blocked address's attempts do not lengthen its block
                raise asyncssh.PermissionDenied(
                    f"address blocked after repeated authentication failures until "
                    f"{until.isoformat()}"
                )
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        found = await self.drop.key_of(username, key.export_public_key("pkcs8-der"))
        if found is None:
            log.info(
                "sftp: refused key %s for %r from %s",
                key.get_fingerprint(),
                username[:64],
                self.address,
            )
            self.counted = True
            await self.drop.note_failure(self.address)
            return False
        self.principal = Principal(found[0], username, found[1], self.address)
        return True

    async def auth_completed(self) -> None:
        guard = self.drop.parts.guard
        if guard is not None:
            await guard.settle(self.address, AuthOutcome(succeeded=True))

    # Everything but the sftp subsystem is refused, each explicitly.
    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        log.info("sftp: refused local port forwarding for %s", self.address)
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        log.info("sftp: refused remote port forwarding for %s", self.address)
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False

    def tun_requested(self, unit: int | None) -> bool:
        return False


@dataclass(slots=True)
class _Upload:
    customer: Customer
    name: str
    data: bytearray = field(default_factory=bytearray)
    refused: str | None = None


@dataclass(slots=True)
class _Result:
    data: bytes
    #: the login-secret this reading shows (held by the drop, never stored), forgotten once
    #: the client read the result to its end
    unshown: tuple[int, str, int] | None
    read_to_end: bool = False


def _dir_attrs() -> SFTPAttrs:
    return SFTPAttrs(permissions=stat.S_IFDIR | 0o700, nlink=1)


def _file_attrs(size: int, when: datetime, mode: int) -> SFTPAttrs:
    stamp = int(when.timestamp())
    return SFTPAttrs(size=size, permissions=stat.S_IFREG | mode, atime=stamp, mtime=stamp, nlink=1)


def parse_path(raw: bytes) -> tuple[str, ...]:
    """A client's path as the segments of the app's tree (relative paths start at ``/``).

    Refused: bytes that are not UTF-8, NUL and other control characters, backslashes, and any
    ``..`` segment. Unicode look-alikes are checked in their NFKC form (a fullwidth solidus
    or full stop is the character it looks like); names are kept in NFC.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise asyncssh.SFTPInvalidFilename("path is not UTF-8") from None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise asyncssh.SFTPInvalidFilename("path holds a control character (NUL included)")
    text = unicodedata.normalize("NFC", text)
    segments: list[str] = []
    for segment in text.split("/"):
        folded = unicodedata.normalize("NFKC", segment)
        if "\\" in folded or "/" in folded:
            raise asyncssh.SFTPInvalidFilename("path holds a backslash or a slash look-alike")
        if folded == "..":
            raise asyncssh.SFTPPermissionDenied("'..' is not allowed: paths stay in /inbox")
        if folded in ("", "."):
            continue
        if len(segment) > MAX_NAME:
            raise asyncssh.SFTPInvalidFilename(f"a name is at most {MAX_NAME} characters")
        segments.append(segment)
    return tuple(segments)


@contextmanager
def _internal_errors_hidden() -> Iterator[None]:
    """asyncssh sends an unexpected exception's text to the client ("Uncaught exception: …",
    SQL included): bankhub's own failures are logged here and answered in general terms."""
    try:
        yield
    except (asyncssh.SFTPError, DomainError):
        raise
    except Exception:
        log.exception("sftp: an operation failed")
        raise asyncssh.SFTPFailure(
            "bankhub could not complete this operation; nothing was changed"
        ) from None


def _only_inbox() -> asyncssh.SFTPError:
    return asyncssh.SFTPNoSuchFile("nothing here but /inbox/<customer identifier>/<file>")


class _Inbox(asyncssh.SFTPServer):
    """One SFTP session of an authenticated app. Every operation of asyncssh's base class
    that would touch the local file system is overridden."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], drop: DropServer) -> None:
        super().__init__(chan)
        owner = chan.get_connection().get_owner()
        if not isinstance(owner, _Login) or owner.principal is None:  # pragma: no cover
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "not logged in"
            )
        self.principal: Principal = owner.principal
        self.drop = drop
        self.uploads: dict[int, _Upload] = {}

    # -- the tree -------------------------------------------------------------------------

    def _result(self, customer_id: str, row: DroppedFile) -> bytes:
        """The result file as the client reads it now (with a login-secret not shown yet)."""
        secret = self.drop.unshown.get((self.principal.app_id, customer_id, row.id))
        return services.result_of(row, secret)

    async def _customer(self, identifier: str) -> Customer:
        customer = await self.drop.customer(self.principal.app_id, identifier)
        if customer is None:
            raise asyncssh.SFTPNoSuchFile(
                f"no customer with identifier {identifier!r} in this app; create it with "
                "POST /v2/customer first"
            )
        return customer

    async def _file(self, raw: bytes) -> tuple[Customer, str]:
        parts = parse_path(raw)
        if len(parts) != 3 or parts[0] != INBOX:
            raise _only_inbox()
        return await self._customer(parts[1]), parts[2]

    def realpath(self, path: bytes) -> bytes:
        return ("/" + "/".join(parse_path(path))).encode()

    async def stat(self, path: bytes) -> SFTPAttrs:
        parts = parse_path(path)
        if parts in ((), (INBOX,)):
            return _dir_attrs()
        if parts[0] != INBOX or len(parts) > 3:
            raise _only_inbox()
        customer = await self._customer(parts[1])
        if len(parts) == 2:
            return _dir_attrs()
        name = parts[2]
        base = name.removesuffix(RESULT_SUFFIX)
        row = await self.drop.row(self.principal.app_id, customer.id, base)
        if row is None:
            raise asyncssh.SFTPNoSuchFile(f"no file {name!r} in this folder")
        if name.endswith(RESULT_SUFFIX):
            return _file_attrs(len(self._result(customer.id, row)), row.created_at, 0o400)
        # the statement itself is not kept: listed with its size, not readable
        return _file_attrs(row.size, row.created_at, 0o200)

    async def lstat(self, path: bytes) -> SFTPAttrs:
        return await self.stat(path)

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        parts = parse_path(path)
        here = [SFTPName(b".", attrs=_dir_attrs()), SFTPName(b"..", attrs=_dir_attrs())]
        if parts == ():
            for name in [*here, SFTPName(INBOX.encode(), attrs=_dir_attrs())]:
                yield name
            return
        if parts == (INBOX,):
            for name in here:
                yield name
            for folder in await self.drop.folders(self.principal.app_id):
                yield SFTPName(folder.encode(), attrs=_dir_attrs())
            return
        if len(parts) != 2 or parts[0] != INBOX:
            raise asyncssh.SFTPNotADirectory("not a folder")
        customer = await self._customer(parts[1])
        for name in here:
            yield name
        for row in await self.drop.rows(self.principal.app_id, customer.id):
            yield SFTPName(row.name.encode(), attrs=_file_attrs(row.size, row.created_at, 0o200))
            yield SFTPName(
                (row.name + RESULT_SUFFIX).encode(),
                attrs=_file_attrs(len(self._result(customer.id, row)), row.created_at, 0o400),
            )

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        parts = parse_path(path)
        if len(parts) != 2 or parts[0] != INBOX:
            raise asyncssh.SFTPPermissionDenied("the only folders are /inbox/<customer identifier>")
        await self._customer(parts[1])  # a customer's folder always exists: nothing to make

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("folders are the app's customers: none is removed")

    # -- files ------------------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        customer, name = await self._file(path)
        writing = pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT)
        if not writing:
            if name.endswith(RESULT_SUFFIX):
                base = name.removesuffix(RESULT_SUFFIX)
                row = await self.drop.row(self.principal.app_id, customer.id, base)
                if row is not None:
                    held = (self.principal.app_id, customer.id, row.id)
                    data = self._result(customer.id, row)
                    return _Result(data, held if held in self.drop.unshown else None)
            elif await self.drop.row(self.principal.app_id, customer.id, name) is not None:
                raise asyncssh.SFTPPermissionDenied(
                    f"statement files are not kept once imported; read {name}{RESULT_SUFFIX}"
                )
            raise asyncssh.SFTPNoSuchFile(f"no file {name!r} in this folder")
        if pflags & asyncssh.FXF_READ:
            raise asyncssh.SFTPPermissionDenied("a file is opened to read or to write, not both")
        if name.endswith(RESULT_SUFFIX):
            raise asyncssh.SFTPPermissionDenied(
                f"names ending in {RESULT_SUFFIX} are bankhub's result files"
            )
        if len(self.uploads) >= OPEN_UPLOADS:
            raise asyncssh.SFTPFailure(
                f"at most {OPEN_UPLOADS} uploads at once per connection: close one first"
            )
        if self.drop.open_by_app[self.principal.app_id] >= OPEN_UPLOADS_PER_APP:
            raise asyncssh.SFTPFailure(
                f"at most {OPEN_UPLOADS_PER_APP} uploads at once per app, over all its "
                "connections: close one first"
            )
        await self.drop.room_for(self.principal.app_id, customer.id, name)
        upload = _Upload(customer, name)
        self.uploads[id(upload)] = upload
        self.drop.open_by_app[self.principal.app_id] += 1
        return upload

    def _release(self, upload: _Upload) -> None:
        """Forget an upload that ended (closed, refused or cut): its bytes and its slot."""
        if self.uploads.pop(id(upload), None) is None:
            return
        self.drop.held_bytes -= len(upload.data)
        upload.data = bytearray()
        self.drop.open_by_app[self.principal.app_id] -= 1

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, _Upload):
            raise asyncssh.SFTPPermissionDenied("this file is open to read")
        limit = self.drop.parts.settings.sftp_max_file_bytes
        if file_obj.refused is None and offset + len(data) > limit:
            # stop the write here: nothing is held past the limit, nothing will be imported
            file_obj.refused = (
                f"{file_obj.name} is over the {limit} bytes a statement file may have; "
                "nothing of it is imported"
            )
            self.drop.held_bytes -= len(file_obj.data)
            file_obj.data = bytearray()
        if file_obj.refused is not None:
            raise asyncssh.SFTPQuotaExceeded(file_obj.refused)
        end = offset + len(data)
        growth = end - len(file_obj.data)
        if growth > 0 and self.drop.held_bytes + growth > MAX_HELD_BYTES:
            # not the file's fault: the write is refused, the upload may go on after a pause
            raise asyncssh.SFTPFailure(
                "bankhub is holding as many uploads as it can at the moment; try this write "
                "again shortly"
            )
        if growth > 0:
            file_obj.data.extend(bytes(growth))
            self.drop.held_bytes += growth
        file_obj.data[offset:end] = data
        return len(data)

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, _Result):
            raise asyncssh.SFTPPermissionDenied("this file is open to write")
        if offset + size >= len(file_obj.data):
            file_obj.read_to_end = True
        return file_obj.data[offset : offset + size]

    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, _Result):
            if file_obj.read_to_end and file_obj.unshown is not None:
                self.drop.unshown.pop(file_obj.unshown, None)
            return
        if not isinstance(file_obj, _Upload):
            return
        if self.channel.is_closing():
            # asyncssh closes the files still open when a connection is lost: such an upload
            # was cut, not finished, and is discarded, never imported half
            self._release(file_obj)
            return
        data = bytes(file_obj.data)
        self._release(file_obj)
        if file_obj.refused is not None:
            raise asyncssh.SFTPQuotaExceeded(file_obj.refused)
        refused = await self.drop.receive(self.principal, file_obj.customer, file_obj.name, data)
        if refused is not None:
            raise asyncssh.SFTPFailure(
                f"{file_obj.name} was not imported: {refused.message} "
                f"(see {file_obj.name}{RESULT_SUFFIX})"
            )

    def fstat(self, file_obj: object) -> SFTPAttrs:
        if isinstance(file_obj, _Upload):
            return SFTPAttrs(size=len(file_obj.data), permissions=stat.S_IFREG | 0o200)
        if isinstance(file_obj, _Result):
            return SFTPAttrs(size=len(file_obj.data), permissions=stat.S_IFREG | 0o400)
        raise asyncssh.SFTPInvalidHandle("not an open file")

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        # times and modes a client sets after an upload (``put -p``) mean nothing here
        await self.stat(path)

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self.stat(path)

    def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        return None

    def fsync(self, file_obj: object) -> None:
        return None

    async def remove(self, path: bytes) -> None:
        customer, name = await self._file(path)
        base = name.removesuffix(RESULT_SUFFIX)
        if not await self.drop.remove(self.principal.app_id, customer.id, base):
            raise asyncssh.SFTPNoSuchFile(f"no file {name!r} in this folder")

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._rename(oldpath, newpath, replace=True)

    async def _rename(self, oldpath: bytes, newpath: bytes, *, replace: bool) -> None:
        customer, old = await self._file(oldpath)
        other, new = await self._file(newpath)
        if other.id != customer.id:
            raise asyncssh.SFTPPermissionDenied("a file stays in its customer's folder")
        if old.endswith(RESULT_SUFFIX) or new.endswith(RESULT_SUFFIX):
            raise asyncssh.SFTPPermissionDenied(
                f"result files follow their statement file: rename that one ({RESULT_SUFFIX} "
                "names are bankhub's)"
            )
        await self.drop.rename(self.principal.app_id, customer.id, old, new, replace=replace)

    # -- refused outright ---------------------------------------------------------------

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPPermissionDenied("links are not offered")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not offered")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not offered")

    def statvfs(self, path: bytes) -> Any:
        raise asyncssh.SFTPOpUnsupported("file system statistics are not offered")

    def fstatvfs(self, file_obj: object) -> Any:
        raise asyncssh.SFTPOpUnsupported("file system statistics are not offered")

    def lock(self, file_obj: object, offset: int, length: int, flags: int) -> None:
        raise asyncssh.SFTPOpUnsupported("locks are not offered")

    def unlock(self, file_obj: object, offset: int, length: int) -> None:
        raise asyncssh.SFTPOpUnsupported("locks are not offered")

    def exit(self) -> None:
        # uploads never closed (a dropped connection) are discarded, never half imported
        for upload in list(self.uploads.values()):
            self._release(upload)


def result_file(outcome: ImportOutcome) -> bytes:
    """The ``.result.json`` of an imported file as stored: ``POST /v2/statement``'s answer,
    the login-secret left out (held apart until shown, see ``services.result_of``)."""
    answer = import_out(outcome)
    answer.secret = None
    return msgspec.json.encode(StatementImportEnvelope(answer))


class DropServer:
    """The listener and what its connections share: the collaborators, the host key, and the
    address-block bookkeeping of failed logins."""

    def __init__(self, parts: Collaborators) -> None:
        self.parts = parts
        # asyncssh narrates every channel at info level; bankhub logs what it decides itself
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        self.host_key = hostkey.load_or_create(parts.settings.data_dir)
        self.fingerprint = hostkey.fingerprint(self.host_key)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._pending: set[asyncio.Task[None]] = set()
        #: the connections open now, and a signal each time one ends
        self.live: set[_Login] = set()
        self._ended = asyncio.Condition()
        #: open uploads per app, and the bytes all open uploads hold (OPEN_UPLOADS_PER_APP,
        #: MAX_HELD_BYTES)
        self.open_by_app: Counter[int] = Counter()
        self.held_bytes = 0
        #: login-secrets of logins a dropped file opened, not yet shown in its result file, by
        #: (app, customer, row; a rename keeps the row): S1 keeps secrets only as keyed
        #: hashes, so these live in this process alone and are gone if it stops first
        #: (docs/sftp.md)
        self.unshown: dict[tuple[int, str, int], str] = {}

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen; the port bound (an ephemeral one when ``port`` is 0)."""
        settings = self.parts.settings
        self._acceptor = await asyncssh.create_server(
            lambda: _Login(self),
            host if host is not None else settings.sftp_host,
            port if port is not None else (settings.sftp_port or 0),
            server_host_keys=[self.host_key],
            sftp_factory=self._sftp,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            login_timeout=60,
        )
        bound = int(self._acceptor.sockets[0].getsockname()[1])
        log.info(
            "sftp statement drop on %s:%d, host key %s",
            host if host is not None else settings.sftp_host,
            bound,
            self.fingerprint,
        )
        return bound

    async def close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        for login in list(self.live):
            if login.conn is not None:
                login.conn.close()
        await self.settled()

    async def settled(self) -> None:
        """Wait until every connection has ended and its failure is counted (tests, and the
        end of ``close``)."""
        async with self._ended:
            await self._ended.wait_for(lambda: not self.live)
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def wake(self) -> None:
        async def tell() -> None:
            async with self._ended:
                self._ended.notify_all()

        self._track(tell())

    def _sftp(self, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return _Inbox(chan, self)

    # -- authentication ---------------------------------------------------------------------

    async def key_of(self, username: str, offered_der: bytes) -> tuple[int, str] | None:
        """The app and the public id of its active key the offered key is; None otherwise."""
        with tenancy.everything():  # the app is not known yet: its client id names it
            async with self.parts.db.transaction() as session:
                app = await services.app_by_client_id(session, username)
                app_id = app.id if app is not None else None
        if app_id is None:
            return None
        with tenancy.acting_for(app_id):  # S14: its keys are read as the app's own rows
            async with self.parts.db.transaction() as session:
                found = services.key_matching(
                    await services.login_keys(session, app_id), offered_der
                )
                return (app_id, found.public_id) if found is not None else None

    async def note_failure(self, address: str) -> None:
        guard = self.parts.guard
        if guard is not None:
            await guard.settle(address, AuthOutcome(failed=True))

    def count_failure(self, address: str) -> None:
        self._track(self.note_failure(address))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- the app's tree -------------------------------------------------------------------

    async def _read(self, app_id: int, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        with _internal_errors_hidden(), tenancy.acting_for(app_id):
            async with self.parts.db.transaction() as session:
                return await work(session)

    async def customer(self, app_id: int, identifier: str) -> Customer | None:
        return await self._read(
            app_id, lambda s: services.customer_by_identifier(s, app_id, identifier)
        )

    async def folders(self, app_id: int) -> list[str]:
        return list(await self._read(app_id, lambda s: services.folders(s, app_id)))

    async def rows(self, app_id: int, customer_id: str) -> list[DroppedFile]:
        return list(await self._read(app_id, lambda s: services.files(s, app_id, customer_id)))

    async def row(self, app_id: int, customer_id: str, name: str) -> DroppedFile | None:
        return await self._read(app_id, lambda s: services.file_named(s, app_id, customer_id, name))

    async def room_for(self, app_id: int, customer_id: str, name: str) -> None:
        """Refuse an upload of a new name once the app keeps its most files."""
        limit = self.parts.settings.sftp_max_files

        async def check(session: AsyncSession) -> None:
            if await services.file_named(session, app_id, customer_id, name) is not None:
                return  # a file of the same name is replaced: the count stays
            if await services.files_kept(session, app_id) >= limit:
                raise asyncssh.SFTPQuotaExceeded(
                    f"this app keeps {limit} files, the most it may: remove some (their "
                    ".result.json with them) before uploading more"
                )

        await self._read(app_id, check)

    def hold_secret(self, where: tuple[int, str, int], secret: str) -> None:
        if len(self.unshown) >= MAX_UNSHOWN:
            # the oldest goes first; its login can be deleted and its file dropped again
            del self.unshown[next(iter(self.unshown))]
        self.unshown[where] = secret

    async def remove(self, app_id: int, customer_id: str, name: str) -> bool:
        with _internal_errors_hidden(), tenancy.acting_for(app_id):
            async with self.parts.db.transaction(write=True) as session:
                gone = await services.remove(session, app_id, customer_id, name)
        if gone is None:
            return False
        self.unshown.pop((app_id, customer_id, gone), None)
        return True

    async def rename(
        self, app_id: int, customer_id: str, old: str, new: str, *, replace: bool
    ) -> None:
        with _internal_errors_hidden(), tenancy.acting_for(app_id):
            async with self.parts.db.transaction(write=True) as session:
                if await services.file_named(session, app_id, customer_id, new) is not None:
                    if not replace:
                        raise asyncssh.SFTPFileAlreadyExists(f"{new!r} exists")
                    await services.remove(session, app_id, customer_id, new)
                    await session.flush()
                if not await services.rename(session, app_id, customer_id, old, new):
                    raise asyncssh.SFTPNoSuchFile(f"no file {old!r} in this folder")

    async def receive(
        self, principal: Principal, customer: Customer, name: str, data: bytes
    ) -> DomainError | None:
        """Import a closed upload as ``POST /v2/statement`` would; the refusal, if any. Either
        way its outcome is kept as the result file and audited."""
        dropped = services.Dropped(
            app_id=principal.app_id,
            client_id=principal.client_id,
            customer_id=customer.id,
            name=name,
            data=data,
            key_id=principal.key_id,
            address=principal.address,
        )
        with _internal_errors_hidden(), tenancy.acting_for(principal.app_id):
            try:
                parsed = await parse_file(data, name)
                async with self.parts.db.transaction(write=True) as session:
                    kept = await services.import_dropped(
                        session, self.parts.engine, dropped, parsed, self.parts.clock(), result_file
                    )
                if kept.secret is not None:
                    self.hold_secret((principal.app_id, customer.id, kept.row.id), kept.secret)
            except DomainError as refused:
                async with self.parts.db.transaction(write=True) as session:
                    await services.keep_refused(session, dropped, refused, self.parts.clock())
                return refused
        return None
