"""Test eIDAS material made with ``cryptography`` at test time: a TPP CA issuing QWACs and
QSealCs with PSD2 QCStatements, and a bank CA whose server certificate names 127.0.0.1.

The QCStatements are written here with a few lines of DER of our own (not bankhub's pyasn1
types), and read back by the peer bank with the small DER reader below: bankhub's parser is
checked against an encoding it did not produce.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

QC_STATEMENTS = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
PSD2_STATEMENT = "0.4.0.19495.2"
QC_COMPLIANCE = "0.4.0.1862.1.1"
ROLE_OIDS = {
    "PSP_AS": "0.4.0.19495.1.1",
    "PSP_PI": "0.4.0.19495.1.2",
    "PSP_AI": "0.4.0.19495.1.3",
    "PSP_IC": "0.4.0.19495.1.4",
}
PASSPHRASE = "correct horse battery staple"


# --- DER, written and read by hand ------------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _utf8(text: str) -> bytes:
    return _tlv(0x0C, text.encode())


def qc_statements(roles: tuple[str, ...]) -> bytes:
    """QCStatements: QcCompliance, then the PSD2 statement with ``roles``."""
    psd2 = _seq(
        _seq(*(_seq(_oid(ROLE_OIDS[r]), _utf8(r)) for r in roles)),
        _utf8("Bundesanstalt fuer Finanzdienstleistungsaufsicht"),
        _utf8("DE-BAFIN"),
    )
    return _seq(_seq(_oid(QC_COMPLIANCE)), _seq(_oid(PSD2_STATEMENT), psd2))


def read_der(data: bytes) -> list[tuple[int, bytes]]:
    """The TLVs one after another in ``data`` (tag, contents)."""
    found, at = [], 0
    while at < len(data):
        tag, size = data[at], data[at + 1]
        at += 2
        if size & 0x80:
            count = size & 0x7F
            size = int.from_bytes(data[at : at + count], "big")
            at += count
        found.append((tag, data[at : at + size]))
        at += size
    return found


def read_oid(body: bytes) -> str:
    arcs = [body[0] // 40, body[0] % 40]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def roles_of(certificate: x509.Certificate) -> set[str]:
    """The PSD2 role OIDs named in a certificate's QCStatements, read by hand."""
    try:
        extension = certificate.extensions.get_extension_for_oid(QC_STATEMENTS)
    except x509.ExtensionNotFound:
        return set()
    value = extension.value
    assert isinstance(value, x509.UnrecognizedExtension)
    ((_, statements),) = read_der(value.value)
    found: set[str] = set()
    for _, statement in read_der(statements):
        parts = read_der(statement)
        if read_oid(parts[0][1]) != PSD2_STATEMENT:
            continue
        roles = read_der(parts[1][1])[0][1]
        for _, role in read_der(roles):
            found.add(read_oid(read_der(role)[0][1]))
    return found


# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    certificate: x509.Certificate


@dataclass(frozen=True)
class EidasPki:
    directory: Path
    tpp_ca: Path
    tpp_ca_certificate: x509.Certificate
    bank_ca: Path
    server: Issued
    qwac: Issued
    qseal: Issued
    qseal_ec: Issued
    qwac_encrypted: Issued
    roleless: Issued
    expired: Issued
    not_yet_valid: Issued
    no_statement: Issued
    other_key: Path


def _name(common_name: str, organisation: str = "bankhub tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        ]
    )


def _ca(name: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=90))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _write_key(
    path: Path,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    passphrase: str | None = None,
) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    path.chmod(0o600)


def _issue(
    directory: Path,
    name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    roles: tuple[str, ...] | None = ("PSP_AI", "PSP_PI"),
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    start: datetime,
    end: datetime,
    server_ip: str | None = None,
    passphrase: str | None = None,
) -> Issued:
    ca_cert, ca_key = ca
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name, "Example TPP GmbH"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server_ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]), False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
        )
    if roles is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(QC_STATEMENTS, qc_statements(roles)), critical=False
        )
    certificate = builder.sign(ca_key, hashes.SHA256())
    issued = Issued(directory / f"{name}.pem", directory / f"{name}.key", certificate)
    issued.cert.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    _write_key(issued.key, key, passphrase=passphrase)
    return issued


def make_eidas_pki(directory: Path) -> EidasPki:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    # wide enough for the suite's fixed clock (tests.conftest.FakeClock) and the real one
    start, end = now - timedelta(days=60), now + timedelta(days=60)
    tpp_ca = _ca("Test QTSP CA", now)
    bank_ca = _ca("Test Bank CA", now)
    (directory / "tpp-ca.pem").write_bytes(tpp_ca[0].public_bytes(serialization.Encoding.PEM))
    (directory / "bank-ca.pem").write_bytes(bank_ca[0].public_bytes(serialization.Encoding.PEM))
    other_key = directory / "other.key"
    _write_key(other_key, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return EidasPki(
        directory=directory,
        tpp_ca=directory / "tpp-ca.pem",
        tpp_ca_certificate=tpp_ca[0],
        bank_ca=directory / "bank-ca.pem",
        server=_issue(
            directory,
            "bank-server",
            bank_ca,
            roles=None,
            server_ip="127.0.0.1",
            start=start,
            end=end,
        ),
        qwac=_issue(directory, "qwac", tpp_ca, start=start, end=end),
        qseal=_issue(directory, "qseal", tpp_ca, start=start, end=end),
        qseal_ec=_issue(
            directory,
            "qseal-ec",
            tpp_ca,
            key=ec.generate_private_key(ec.SECP256R1()),
            start=start,
            end=end,
        ),
        qwac_encrypted=_issue(
            directory, "qwac-encrypted", tpp_ca, passphrase=PASSPHRASE, start=start, end=end
        ),
        roleless=_issue(directory, "roleless", tpp_ca, roles=("PSP_PI",), start=start, end=end),
        expired=_issue(
            directory,
            "expired",
            tpp_ca,
            start=now - timedelta(days=400),
            end=now - timedelta(days=40),
        ),
        not_yet_valid=_issue(
            directory,
            "not-yet-valid",
            tpp_ca,
            start=now + timedelta(days=2),
            end=now + timedelta(days=40),
        ),
        no_statement=_issue(directory, "no-statement", tpp_ca, roles=None, start=start, end=end),
        other_key=other_key,
    )
