"""An OFX Direct Connect server on 127.0.0.1 that answers from the shared corpus.

It checks what a bank's server would: the MIME type, the sign-on's user id and password, and
which account and dates a statement request names. Statements are the corpus files, sent
byte for byte (they are matched to the request by ACCTID, so their fixed TRNUIDs stay as they
are). The account list (ACCTINFO) and sign-on failures have no corpus file; they are written
here in OFX 2.2 XML, naming the accounts the corpus files hold.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.support.loopback import serving

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus" / "ofx"
LIFETIME_SECONDS = 60.0
OFX_MIME = "application/x-ofx"


@dataclass(frozen=True)
class Served:
    """An account the server lists, and the corpus file that is its statement."""

    file: str
    acctid: str
    kind: str  # BANK, CC or INV
    bankid: str | None = None
    accttype: str | None = None
    desc: str | None = None

    @classmethod
    def from_corpus(cls, file: str, desc: str | None = None) -> Served:
        text = corpus(file).decode("latin-1")
        kind = "CC" if "<CCACCTFROM>" in text else "BANK"
        return cls(
            file,
            _tag(text, "ACCTID") or "",
            kind,
            _tag(text, "BANKID"),
            _tag(text, "ACCTTYPE"),
            desc,
        )


@dataclass
class User:
    password: str
    accounts: list[Served]
    signon_code: int = 0
    signon_message: str = ""
    delay: float = 0.0


@dataclass
class Seen:
    content_type: str
    header: str
    userid: str | None
    userpass: str | None
    kind: str
    acctid: str | None = None
    bankid: str | None = None
    accttype: str | None = None
    dtstart: str | None = None
    dtend: str | None = None
    include: str | None = None


@dataclass
class OfxServer:
    users: dict[str, User] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def answer(self, content_type: str, body: str) -> tuple[int, bytes]:
        if body.startswith("OFXHEADER:100\r\nDATA:OFXSGML") or body.startswith(
            "OFXHEADER:100\nDATA:OFXSGML"
        ):
            header = "OFXHEADER:100"
        elif body.startswith("<?xml") and '<?OFX OFXHEADER="200"' in body:
            header = "OFXHEADER=200"
        else:
            header = "unknown"
        if "<STMTRQ>" in body:
            kind = "stmt"
        elif "<CCSTMTRQ>" in body:
            kind = "ccstmt"
        else:
            kind = "acctinfo" if "<ACCTINFORQ>" in body else "other"
        version = re.search(r'VERSION(?::|=")(\d+)', body)
        seen = Seen(
            content_type,
            f"{header} VERSION {version.group(1) if version else '?'}",
            _tag(body, "USERID"),
            _tag(body, "USERPASS"),
            kind,
            _tag(body, "ACCTID"),
            _tag(body, "BANKID"),
            _tag(body, "ACCTTYPE"),
            _tag(body, "DTSTART"),
            _tag(body, "DTEND"),
            _tag(body, "INCLUDE"),
        )
        self.seen.append(seen)
        if content_type != OFX_MIME:
            return 415, b"Unsupported Media Type"
        user = self.users.get(seen.userid or "")
        if user is not None and user.delay:
            time.sleep(user.delay)
        if user is None or user.password != seen.userpass:
            return 200, signon_failure(15500, "Invalid user ID or password")
        if user.signon_code:
            return 200, signon_failure(user.signon_code, user.signon_message)
        if kind == "acctinfo":
            return 200, account_list(user.accounts, _tag(body, "TRNUID") or "0")
        served = next((a for a in user.accounts if a.acctid == seen.acctid), None)
        if kind in ("stmt", "ccstmt") and served is not None:
            return 200, corpus(served.file)
        return 400, b"Bad Request"


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _tag(text: str, tag: str) -> str | None:
    found = re.search(rf"<{re.escape(tag)}>([^<\r\n]*)", text)
    return html.unescape(found.group(1).strip()) if found else None


_HEADER = (
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)


def _sonrs(code: int, severity: str, message: str) -> str:
    said = f"<MESSAGE>{html.escape(message)}</MESSAGE>" if message else ""
    return (
        f"<SIGNONMSGSRSV1><SONRS><STATUS><CODE>{code}</CODE><SEVERITY>{severity}</SEVERITY>"
        f"{said}</STATUS><DTSERVER>20260310120000.000[+0:UTC]</DTSERVER>"
        "<LANGUAGE>ENG</LANGUAGE></SONRS></SIGNONMSGSRSV1>"
    )


def signon_failure(code: int, message: str) -> bytes:
    """A sign-on refused with ``code`` (15500: wrong user id or password)."""
    severity = "INFO" if code == 15000 else "ERROR"
    return (_HEADER + f"<OFX>{_sonrs(code, severity, message)}</OFX>").encode()


def account_list(accounts: list[Served], trnuid: str) -> bytes:
    infos = []
    for served in accounts:
        desc = f"<DESC>{html.escape(served.desc)}</DESC>" if served.desc else ""
        flags = "<SUPTXDL>Y</SUPTXDL><XFERSRC>N</XFERSRC><XFERDEST>N</XFERDEST>"
        status = "<SVCSTATUS>ACTIVE</SVCSTATUS>"
        if served.kind == "CC":
            item = (
                f"<CCACCTINFO><CCACCTFROM><ACCTID>{served.acctid}</ACCTID></CCACCTFROM>"
                f"{flags}{status}</CCACCTINFO>"
            )
        elif served.kind == "INV":
            item = (
                f"<INVACCTINFO><INVACCTFROM><BROKERID>{served.bankid}</BROKERID>"
                f"<ACCTID>{served.acctid}</ACCTID></INVACCTFROM><USPRODUCTTYPE>401K"
                f"</USPRODUCTTYPE><CHECKING>N</CHECKING>{status}</INVACCTINFO>"
            )
        else:
            item = (
                f"<BANKACCTINFO><BANKACCTFROM><BANKID>{served.bankid}</BANKID>"
                f"<ACCTID>{served.acctid}</ACCTID><ACCTTYPE>{served.accttype}</ACCTTYPE>"
                f"</BANKACCTFROM>{flags}{status}</BANKACCTINFO>"
            )
        infos.append(f"<ACCTINFO>{desc}{item}</ACCTINFO>")
    body = (
        f"<OFX>{_sonrs(0, 'INFO', '')}<SIGNUPMSGSRSV1><ACCTINFOTRNRS>"
        f"<TRNUID>{trnuid}</TRNUID><STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>"
        f"<ACCTINFORS><DTACCTUP>20260310120000.000[+0:UTC]</DTACCTUP>{''.join(infos)}"
        "</ACCTINFORS></ACCTINFOTRNRS></SIGNUPMSGSRSV1></OFX>"
    )
    return (_HEADER + body).encode()


def _handler(server: OfxServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8")
            content_type = self.headers.get("Content-Type", "")
            status, answer = server.answer(content_type, body)
            self.send_response(status)
            self.send_header("Content-Type", OFX_MIME)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@contextmanager
def running_ofx_server() -> Iterator[OfxServer]:
    """Serve on a free loopback port for the duration of the block (at most a minute)."""
    state = OfxServer()
    with serving(_handler(state), LIFETIME_SECONDS) as origin:
        state.url = f"{origin}/ofx"
        yield state
