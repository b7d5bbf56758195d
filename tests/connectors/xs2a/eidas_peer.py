"""The peer bank behind TLS, as a licensed bank's XS2A interface stands: it demands a client
certificate issued by the test QTSP, refuses one without the PSD2 role PSP_AI, and checks every
request's ``Digest`` and ``Signature`` with ``cryptography`` on its own (this module does not
import bankhub's signer), answering ``401`` with the Berlin Group codes otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.connectors.xs2a.eidas_pki import ROLE_OIDS, EidasPki, roles_of
from tests.connectors.xs2a.peer import PeerBank, _error, _Handler
from tests.support.loopback import QuietServer

_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class Checks:
    """What the peer saw: each request's verdict, the client certificates presented."""

    verdicts: list[tuple[str, str, str]] = field(default_factory=list)
    client_subjects: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refused(self) -> list[tuple[str, str, str]]:
        return [v for v in self.verdicts if v[2] != "ok"]


def verify_signature(
    headers: dict[str, str], body: bytes, ca: x509.Certificate
) -> tuple[int, str, str] | None:
    """None when the request is signed as the Berlin Group asks; else (status, code, why)."""
    signature = headers.get("signature")
    if not signature or "tpp-signature-certificate" not in headers:
        return 401, "SIGNATURE_MISSING", "Signature or TPP-Signature-Certificate missing"
    expected = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    if headers.get("digest") != expected:
        return 401, "SIGNATURE_INVALID", "the Digest does not match the body"
    params = dict(_PARAM.findall(signature))
    try:
        certificate = x509.load_der_x509_certificate(
            base64.b64decode(headers["tpp-signature-certificate"])
        )
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return 401, "CERTIFICATE_INVALID", "the signature certificate is not from the QTSP"
    if ROLE_OIDS["PSP_AI"] not in roles_of(certificate):
        return 401, "ROLE_INVALID", "the signature certificate lacks PSP_AI"
    key_id = f"SN={certificate.serial_number:X},CA={certificate.issuer.rfc4514_string()}"
    if params.get("keyId", "").upper() != key_id.upper():
        return 401, "SIGNATURE_INVALID", f"keyId {params.get('keyId')!r} names another certificate"
    names = params.get("headers", "").split()
    for required in ("digest", "x-request-id", "date"):
        if required not in names:
            return 401, "SIGNATURE_INVALID", f"{required} is not signed"
    for conditional in ("psu-id", "psu-corporate-id", "tpp-redirect-uri"):
        if conditional in headers and conditional not in names:
            return 401, "SIGNATURE_INVALID", f"{conditional} is sent but not signed"
    if any(name not in headers for name in names):
        return 401, "SIGNATURE_INVALID", "a signed header is missing"
    signed = "\n".join(f"{name}: {headers[name]}" for name in names).encode()
    raw = base64.b64decode(params.get("signature", ""))
    key = certificate.public_key()
    try:
        if params.get("algorithm") == "rsa-sha256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, signed, padding.PKCS1v15(), hashes.SHA256())
        elif params.get("algorithm") == "ecdsa-sha256" and isinstance(
            key, ec.EllipticCurvePublicKey
        ):
            key.verify(raw, signed, ec.ECDSA(hashes.SHA256()))
        else:
            return 401, "SIGNATURE_INVALID", f"algorithm {params.get('algorithm')!r}"
    except InvalidSignature:
        return 401, "SIGNATURE_INVALID", "the signature does not verify"
    return None


class _EidasHandler(_Handler):
    checks: Checks
    ca: x509.Certificate

    def setup(self) -> None:
        # the handshake in the handler's thread, so that a refused client stalls nobody else
        self.request.do_handshake()
        super().setup()

    def _serve(self) -> None:
        der = self.connection.getpeercert(binary_form=True)
        assert der is not None  # CERT_REQUIRED: no handshake without one
        client = x509.load_der_x509_certificate(der)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        refusal: tuple[int, str, str] | None = None
        if ROLE_OIDS["PSP_AI"] not in roles_of(client):
            refusal = 401, "ROLE_INVALID", "the QWAC lacks the PSD2 role PSP_AI"
        elif not self.path.startswith("/bank/"):  # the bank's own SCA page is not the API
            refusal = verify_signature(headers, raw, self.ca)
        with self.checks.lock:
            self.checks.client_subjects.append(client.subject.rfc4514_string())
            self.checks.verdicts.append(
                (self.command, self.path, "ok" if refusal is None else refusal[1])
            )
        if refusal is not None:
            status, code, why = refusal
            payload = json.dumps(_error(code, why)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.rfile = _Replay(raw)  # type: ignore[assignment]
        super()._serve()

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class _Replay:
    """The body already read for the checks, read again by the plain peer's handler."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        chunk, self.data = (self.data, b"") if size < 0 else (self.data[:size], self.data[size:])
        return chunk


def server_context(pki: EidasPki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(pki.tpp_ca))
    return context


@contextmanager
def running_tls(
    bank: PeerBank, pki: EidasPki, lifetime: float = 120.0
) -> Iterator[tuple[PeerBank, Checks]]:
    """Serve ``bank`` over TLS with client certificates on a free 127.0.0.1 port."""
    checks = Checks()
    attributes = {"bank": bank, "checks": checks, "ca": pki.tpp_ca_certificate}
    handler = type("Handler", (_EidasHandler,), attributes)
    server = QuietServer(("127.0.0.1", 0), handler)
    server.socket = server_context(pki).wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    watchdog = threading.Timer(lifetime, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    bank.origin = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        yield bank, checks
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
