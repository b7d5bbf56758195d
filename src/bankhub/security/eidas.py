"""eIDAS certificates for licensed access to XS2A banks: the QWAC and the QSealC.

A PSD2 third party shows a bank two qualified certificates: the QWAC (website authentication) as
its TLS client certificate, and the QSealC (electronic seal) whose key signs each request (the
Berlin Group signature, ``connectors.xs2a.signing``). The operator configures both once
(``BANKHUB_XS2A_QWAC_*``, ``BANKHUB_XS2A_QSEAL_*``: files or PEM text, a key optionally
encrypted under a passphrase); a bank's catalogue ``params`` may name files of its own
(``qwac_cert_file``, ``qwac_key_file``, ``qwac_key_passphrase_env``, and the same for
``qseal_``), for an operator who holds several registrations.

A credential is usable only when its certificate is valid now, its key is the certificate's,
and its PSD2 QCStatement (ETSI TS 119 495, ``0.4.0.19495.2``) grants the role the connector
needs (``PSP_AI`` for account information). :func:`load` checks all of it and raises
:class:`EidasError` with one line naming the file (or setting) and what is wrong; start-up runs
the same checks for every bank (:func:`check_catalogue`), so a bad certificate stops ``serve``
and ``worker`` instead of failing at a user's first connect.

``cryptography`` reads the certificates and keys but leaves the QCStatements extension as DER
bytes (it has no type for it); ``pyasn1`` (maintained, typed) decodes that DER against the
ASN.1 of RFC 3739 and ETSI TS 119 495 written out below.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import secrets
import ssl
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyasn1.codec.der import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, namedtype, univ

from bankhub.security.keyring import KeyEncryptionKey, KeyringError, load_keks

if TYPE_CHECKING:
    from bankhub.config import Settings

Kind = Literal["qwac", "qseal"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

#: RFC 3739 ``id-pe-qcStatements``
QC_STATEMENTS_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
#: ETSI TS 119 495 ``id-etsi-psd2-qcStatement``
PSD2_STATEMENT_OID = "0.4.0.19495.2"
#: ETSI TS 119 495 role OIDs and the names the standard gives them
PSD2_ROLES = {
    "0.4.0.19495.1.1": "PSP_AS",
    "0.4.0.19495.1.2": "PSP_PI",
    "0.4.0.19495.1.3": "PSP_AI",
    "0.4.0.19495.1.4": "PSP_IC",
}
#: the PSD2 role each connector's calls need: account information. UK Open Banking banks take
#: the certificates the Open Banking directory issues (OBWAC, OBSeal), which carry no PSD2
#: QCStatement, as well as eIDAS ones: None checks dates and key, not a role.
ROLE_FOR_CONNECTOR: dict[str, str | None] = {"xs2a": "PSP_AI", "ukob": None}

LABELS: dict[Kind, str] = {"qwac": "QWAC", "qseal": "QSealC"}


class EidasError(ValueError):
    """A QWAC or QSealC cannot be used; the message names the file or setting and the fault."""


# --- keys sealed at rest under the key-encryption key ---------------------------------------------

SEALED_BEGIN = "-----BEGIN BANKHUB SEALED KEY-----"
SEALED_END = "-----END BANKHUB SEALED KEY-----"
_SEALED_AAD = b"bankhub eidas private key"


def seal_key(pem: bytes, kek: KeyEncryptionKey) -> str:
    """A private key file's bytes sealed for storage: AES-256-GCM under a fresh data key, the
    data key wrapped by the KEK (``BANKHUB_KEK``/``_FILE`` or the KMS plug-in) as the keyring
    wraps its own. The data keyring's keys are not used: they live in the database, which
    start-up checks come before."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    sealed = AESGCM(data_key).encrypt(nonce, pem, _SEALED_AAD)
    body = ".".join(
        (kek.id, kek.wrap(data_key, _SEALED_AAD), base64.urlsafe_b64encode(nonce + sealed).decode())
    )
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([SEALED_BEGIN, *lines, SEALED_END]) + "\n"


def is_sealed(raw: bytes) -> bool:
    return raw.lstrip().startswith(SEALED_BEGIN.encode())


def unseal_key(raw: bytes, keks: Sequence[KeyEncryptionKey]) -> bytes:
    """The key file's bytes again; ``ValueError`` naming what does not fit."""
    text = raw.decode("ascii", "replace").strip()
    if not text.endswith(SEALED_END):
        raise ValueError("the sealed key is cut off")
    body = "".join(text[len(SEALED_BEGIN) : -len(SEALED_END)].split())
    try:
        kid, wrapped, sealed = body.split(".")
        blob = base64.urlsafe_b64decode(sealed)
    except ValueError:
        raise ValueError("the sealed key is damaged") from None
    kek = next((k for k in keks if k.id == kid), None)
    if kek is None:
        raise ValueError(
            f"it is sealed under the key-encryption key {kid}, which is not configured"
        )
    try:
        data_key = kek.unwrap(wrapped, _SEALED_AAD)
        return AESGCM(data_key).decrypt(blob[:12], blob[12:], _SEALED_AAD)
    except (KeyringError, InvalidTag, ValueError):
        raise ValueError("the sealed key is damaged or was sealed by another KEK") from None


# --- the ASN.1 of the PSD2 QCStatement ------------------------------------------------------------


class _QcStatement(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("statementId", univ.ObjectIdentifier()),
        namedtype.OptionalNamedType("statementInfo", univ.Any()),
    )


class _QcStatements(univ.SequenceOf):
    componentType = _QcStatement()


class _RoleOfPsp(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("roleOfPspOid", univ.ObjectIdentifier()),
        namedtype.NamedType("roleOfPspName", char.UTF8String()),
    )


class _RolesOfPsp(univ.SequenceOf):
    componentType = _RoleOfPsp()


class _Psd2QcType(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("rolesOfPSP", _RolesOfPsp()),
        namedtype.NamedType("nCAName", char.UTF8String()),
        namedtype.NamedType("nCAId", char.UTF8String()),
    )


@dataclass(frozen=True, slots=True)
class Psd2Statement:
    roles: frozenset[str]
    nca_name: str
    nca_id: str


#: what a certificate used without a PSD2 QCStatement (an Open Banking directory one) holds
NO_STATEMENT = Psd2Statement(frozenset(), "", "")


def psd2_statement(certificate: x509.Certificate) -> Psd2Statement | None:
    """The certificate's PSD2 QCStatement, or None when it carries none.

    A role is known by its OID; a name the standard does not list is kept as written.
    Raises ``ValueError`` when the extension is there but is not valid DER of its ASN.1.
    """
    try:
        extension = certificate.extensions.get_extension_for_oid(QC_STATEMENTS_OID)
    except x509.ExtensionNotFound:
        return None
    raw = extension.value
    der = raw.value if isinstance(raw, x509.UnrecognizedExtension) else raw.public_bytes()
    try:
        statements, rest = decoder.decode(der, asn1Spec=_QcStatements())
        if rest:
            raise ValueError("trailing bytes after the QCStatements")
        for statement in statements:
            if str(statement["statementId"]) != PSD2_STATEMENT_OID:
                continue
            info = statement["statementInfo"]
            if not info.isValue:
                raise ValueError("the PSD2 QCStatement has no content")
            psd2, rest = decoder.decode(bytes(info), asn1Spec=_Psd2QcType())
            if rest:
                raise ValueError("trailing bytes after the PSD2 QCStatement")
            roles = frozenset(
                PSD2_ROLES.get(str(role["roleOfPspOid"]), str(role["roleOfPspName"]))
                for role in psd2["rolesOfPSP"]
            )
            return Psd2Statement(roles, str(psd2["nCAName"]), str(psd2["nCAId"]))
    except PyAsn1Error as exc:
        raise ValueError(f"its QCStatements extension cannot be read ({exc})") from None
    return None


# --- where a credential comes from ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """Where one credential's certificate and key are read from, and how they are named in
    messages (a setting or catalogue parameter and its file)."""

    kind: Kind
    cert_label: str
    key_label: str
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    passphrase: str | None = None
    passphrase_label: str = ""
    #: the key-encryption keys that open a key sealed with ``bankhub eidas seal``, read only
    #: when one is (a production process without a KEK may still use unsealed keys)
    keks: Callable[[], Sequence[KeyEncryptionKey]] | None = dataclasses.field(
        default=None, compare=False, hash=False
    )

    def read_certificate(self) -> bytes:
        return _read(self.cert_label, self.cert_file, self.cert_pem)

    def read_key(self) -> bytes:
        return _read(self.key_label, self.key_file, self.key_pem)


def _read(label: str, path: Path | None, pem: str | None) -> bytes:
    if pem is not None:
        return pem.encode()
    assert path is not None  # noqa: S101 - a Source always has one of them  # nosec B101
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EidasError(f"{label}: cannot read the file ({exc.strerror})") from None


def operator_source(settings: Settings, kind: Kind) -> Source | None:
    """The operator's own credential of ``kind`` from the settings, or None when none is set."""
    prefix = f"BANKHUB_XS2A_{kind.upper()}"
    cert_file: Path | None = getattr(settings, f"xs2a_{kind}_cert_file")
    key_file: Path | None = getattr(settings, f"xs2a_{kind}_key_file")
    cert_pem: str | None = getattr(settings, f"xs2a_{kind}_cert")
    key_pem: str | None = getattr(settings, f"xs2a_{kind}_key")
    passphrase: str | None = getattr(settings, f"xs2a_{kind}_key_passphrase")
    if cert_file is not None and cert_pem is not None:
        raise EidasError(f"{prefix}_CERT_FILE and {prefix}_CERT are both set; set one of them")
    if key_file is not None and key_pem is not None:
        raise EidasError(f"{prefix}_KEY_FILE and {prefix}_KEY are both set; set one of them")
    has_cert = cert_file is not None or cert_pem is not None
    has_key = key_file is not None or key_pem is not None
    if not has_cert and not has_key:
        return None
    if not has_cert:
        raise EidasError(f"{prefix}_KEY is set without a certificate ({prefix}_CERT_FILE)")
    if not has_key:
        raise EidasError(f"{prefix}_CERT is set without its key ({prefix}_KEY_FILE)")
    return Source(
        kind=kind,
        cert_label=f"{prefix}_CERT_FILE {cert_file}" if cert_file else f"{prefix}_CERT",
        key_label=f"{prefix}_KEY_FILE {key_file}" if key_file else f"{prefix}_KEY",
        cert_file=cert_file,
        key_file=key_file,
        cert_pem=cert_pem,
        key_pem=key_pem,
        passphrase=passphrase,
        passphrase_label=f"{prefix}_KEY_PASSPHRASE",
        keks=lambda: load_keks(settings),
    )


def bank_source(params: Mapping[str, Any], kind: Kind, bank: str) -> Source | None:
    """A bank's own credential of ``kind`` named in its catalogue params, or None.

    The passphrase is never catalogue data: ``<kind>_key_passphrase_env`` names the environment
    variable that holds it.
    """
    cert, key = params.get(f"{kind}_cert_file"), params.get(f"{kind}_key_file")
    if cert is None and key is None:
        return None
    label = f"{bank}: params.{kind}"
    if not isinstance(cert, str) or not isinstance(key, str):
        raise EidasError(f"{label}_cert_file and {label}_key_file must both name files")
    passphrase = None
    variable = params.get(f"{kind}_key_passphrase_env")
    if variable is not None:
        if not isinstance(variable, str) or variable not in os.environ:
            raise EidasError(
                f"{label}_key_passphrase_env: the environment variable {variable!r} is not set"
            )
        passphrase = os.environ[variable]
    return Source(
        kind=kind,
        cert_label=f"{label}_cert_file {cert}",
        key_label=f"{label}_key_file {key}",
        cert_file=Path(cert),
        key_file=Path(key),
        passphrase=passphrase,
        passphrase_label=f"the variable {variable}" if variable else f"{label}_key_passphrase_env",
    )


def source_for(
    settings: Settings, params: Mapping[str, Any], kind: Kind, bank: str
) -> Source | None:
    """The bank's own credential where its params name one, else the operator's."""
    own = bank_source(params, kind, bank)
    if own is not None:
        return dataclasses.replace(own, keks=lambda: load_keks(settings))
    return operator_source(settings, kind)


# --- a loaded, checked credential -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate chain (the certificate first) and its private key, checked for use."""

    kind: Kind
    label: str
    chain: tuple[x509.Certificate, ...]
    key: PrivateKey
    statement: Psd2Statement

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def describe(self) -> str:
        """One line for the operator: whose certificate, which roles, until when."""
        cert = self.certificate
        roles = ", ".join(sorted(self.statement.roles))
        granted = (
            f"roles {roles} granted by {self.statement.nca_name} ({self.statement.nca_id})"
            if roles
            else "no PSD2 roles (not needed by the bank)"
        )
        return (
            f"{LABELS[self.kind]} {cert.subject.rfc4514_string()} (serial {cert.serial_number:X}, "
            f"issuer {cert.issuer.rfc4514_string()}), {granted}, "
            f"valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, from {self.label}"
        )


def _private_key(source: Source) -> PrivateKey:
    raw = source.read_key()
    if is_sealed(raw):
        try:
            raw = unseal_key(raw, source.keks() if source.keks is not None else ())
        except (ValueError, KeyringError) as exc:
            raise EidasError(f"{source.key_label}: {exc}") from None
    password = source.passphrase.encode() if source.passphrase is not None else None
    try:
        key = serialization.load_pem_private_key(raw, password=password)
    except TypeError:
        if password is None:
            raise EidasError(
                f"{source.key_label}: the key is encrypted; set its passphrase in "
                f"{source.passphrase_label}"
            ) from None
        raise EidasError(
            f"{source.key_label}: the key is not encrypted, but {source.passphrase_label} "
            "gives a passphrase"
        ) from None
    except ValueError:
        if password is not None and b"ENCRYPTED" in raw:
            raise EidasError(
                f"{source.key_label}: the passphrase in {source.passphrase_label} does not open "
                "the key"
            ) from None
        raise EidasError(f"{source.key_label}: not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise EidasError(f"{source.key_label}: the key must be RSA or EC")
    return key


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load(source: Source, *, role: str | None, now: datetime) -> Credential:
    """Read and check a credential: a PEM certificate (chain), valid at ``now``, whose key is
    the one given and whose PSD2 QCStatement grants ``role`` (``None``: no role is needed, and
    a certificate without the statement is taken). One line on the first fault."""
    label = source.cert_label
    try:
        chain = tuple(x509.load_pem_x509_certificates(source.read_certificate()))
    except ValueError:
        raise EidasError(f"{label}: not a PEM certificate") from None
    certificate = chain[0]
    if now < certificate.not_valid_before_utc:
        raise EidasError(
            f"{label}: the {LABELS[source.kind]} is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now > certificate.not_valid_after_utc:
        raise EidasError(
            f"{label}: the {LABELS[source.kind]} expired on "
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    key = _private_key(source)
    if _spki(key.public_key()) != _spki(certificate.public_key()):
        raise EidasError(f"{source.key_label}: the key does not match the certificate {label}")
    try:
        statement = psd2_statement(certificate)
    except ValueError as exc:
        raise EidasError(f"{label}: {exc}") from None
    if role is None:
        return Credential(source.kind, label, chain, key, statement or NO_STATEMENT)
    if statement is None:
        raise EidasError(
            f"{label}: the {LABELS[source.kind]} carries no PSD2 QCStatement "
            f"({PSD2_STATEMENT_OID}); banks refuse it"
        )
    if role not in statement.roles:
        held = ", ".join(sorted(statement.roles)) or "none"
        raise EidasError(
            f"{label}: the {LABELS[source.kind]} lacks the PSD2 role {role} (it has: {held})"
        )
    return Credential(source.kind, label, chain, key, statement)


# --- start-up -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BankCredentials:
    """What one bank's connector is given: the QWAC for TLS, the QSealC for signing."""

    bank: str
    qwac: Credential | None
    qseal: Credential | None


#: credentials already read and checked, by where they came from and the role checked for:
#: loading an RSA key validates it (about 0.1 s), and thousands of banks share the operator's
Loaded = dict[tuple[Source, str | None], Credential]


def credentials_for(
    settings: Settings,
    connector: str,
    params: Mapping[str, Any],
    bank: str,
    now: datetime,
    cache: Loaded | None = None,
) -> BankCredentials | None:
    """The checked credentials a bank served by ``connector`` is reached with; None for a
    connector that takes no eIDAS certificates."""
    if connector not in ROLE_FOR_CONNECTOR:
        return None
    role = ROLE_FOR_CONNECTOR[connector]
    cache = {} if cache is None else cache
    loaded: dict[Kind, Credential | None] = {}
    for kind in ("qwac", "qseal"):
        source = source_for(settings, params, kind, bank)
        if source is None:
            loaded[kind] = None
            continue
        if (source, role) not in cache:
            cache[source, role] = load(source, role=role, now=now)
        loaded[kind] = cache[source, role]
    return BankCredentials(bank, loaded["qwac"], loaded["qseal"])


def check_catalogue(
    settings: Settings, services: Iterable[tuple[str, str, Mapping[str, Any]]], now: datetime
) -> list[BankCredentials]:
    """Every configured credential checked for every bank that uses one, as start-up does.

    ``services`` are (label, connector, params). Raises :class:`EidasError` on the first fault.
    The operator's credentials are checked even when no bank of the catalogue uses them yet.
    """
    found: list[BankCredentials] = []
    cache: Loaded = {}
    for kind in ("qwac", "qseal"):
        source = operator_source(settings, kind)
        if source is not None:
            role = ROLE_FOR_CONNECTOR["xs2a"]
            cache[source, role] = load(source, role=role, now=now)
    for label, connector, params in services:
        credentials = credentials_for(settings, connector, params, label, now, cache)
        if credentials is not None:
            found.append(credentials)
    return found


# --- TLS ------------------------------------------------------------------------------------------


def present_client_certificate(context: ssl.SSLContext, qwac: Credential) -> None:
    """Make ``context`` present the QWAC chain as its TLS client certificate.

    ``ssl`` loads a certificate and key only from files. Rather than ever writing the key in
    clear, it is written encrypted under a one-time passphrase that exists only in this
    process, to a private temporary directory removed as soon as the context holds it.
    """
    one_time = secrets.token_urlsafe(32)
    sealed = qwac.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time.encode()),
    )
    with tempfile.TemporaryDirectory(prefix="bankhub-qwac-") as directory:
        chain_file = Path(directory) / "chain.pem"
        key_file = Path(directory) / "key.pem"
        for path, data in ((chain_file, qwac.chain_pem()), (key_file, sealed)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
        context.load_cert_chain(str(chain_file), str(key_file), password=one_time)


# --- at run time ----------------------------------------------------------------------------------


class CredentialCache:
    """Each bank's checked credentials, read once; the dates checked again at every use, so
    that a certificate that expires while bankhub runs stops being presented."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: dict[object, BankCredentials | None] = {}
        self._credentials: Loaded = {}

    def for_bank(
        self,
        key: object,
        connector: str,
        params: Mapping[str, Any],
        bank: str,
        now: datetime,
    ) -> BankCredentials | None:
        if key not in self._loaded:
            self._loaded[key] = credentials_for(
                self.settings, connector, params, bank, now, self._credentials
            )
        found = self._loaded[key]
        for credential in (found.qwac, found.qseal) if found is not None else ():
            if credential is None:
                continue
            certificate = credential.certificate
            if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
                del self._loaded[key]
                self._credentials.clear()  # read again: the file may have been replaced
                raise EidasError(
                    f"{credential.label}: the {LABELS[credential.kind]} is valid only from "
                    f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                    f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
                )
        return found
