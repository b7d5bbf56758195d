"""HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530), checked for one request.

The Structured Fields of ``Signature-Input``, ``Signature`` and ``Content-Digest`` are parsed
by ``http-sfv`` and the signatures verified by ``cryptography``. What is left is our own: the
signature base (RFC 9421 §2.5) for the components bankhub supports, and bankhub's policy (what
a signature must cover, its time window, its nonce). It is kept here rather than taken from the
``http-message-signatures`` package because the tests sign with that package: a request it
signs and this module accepts is then proof of two implementations agreeing, not of one
agreeing with itself.

A request may carry several signatures; one that verifies is enough. The first failure is
what the caller is told when none does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

from bankhub.errors import DomainError, ErrorCode
from bankhub.signatures import keys
from bankhub.signatures.models import SignatureKey

#: the longest a signature may be valid for (``expires`` − ``created``)
MAX_WINDOW = timedelta(minutes=5)
#: how far ahead of bankhub's clock a signer's ``created`` may be
CLOCK_SKEW = timedelta(seconds=30)
MAX_NONCE = 128
MAX_SIGNATURES = 4
REQUIRED_COMPONENTS = ("@method", "@target-uri")
DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
SUPPORTED_DERIVED = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}
)

#: remembers a nonce until the given moment; False when it was already remembered
NonceClaim = Callable[[str, datetime], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    method: str
    #: the URI the client addressed, as reconstructed behind the trusted proxies
    target_uri: str
    #: field name (lower case) → its values, in order
    headers: Mapping[str, Sequence[str]]
    body: bytes


def invalid(
    message: str, code: ErrorCode = ErrorCode.SIGNATURE_INVALID, **extra: object
) -> DomainError:
    return DomainError(code, message, dict(extra))


def is_signed(headers: Mapping[str, Sequence[str]]) -> bool:
    return bool(headers.get("signature-input") or headers.get("signature"))


def _dictionary(headers: Mapping[str, Sequence[str]], name: str) -> Dictionary:
    values = headers.get(name) or []
    parsed = Dictionary()
    try:
        parsed.parse(", ".join(values).encode("latin-1"))
    except (ValueError, UnicodeEncodeError):
        raise invalid(f"The {name} field is not a valid Structured Field dictionary") from None
    return parsed


def check_digest(headers: Mapping[str, Sequence[str]], body: bytes) -> None:
    """RFC 9530: every sha-256/sha-512 digest given must match the body; at least one is."""
    if not headers.get("content-digest"):
        raise invalid("A request with a body must carry Content-Digest and sign it")
    digests = _dictionary(headers, "content-digest")
    checked = 0
    for name, member in digests.items():
        algorithm = DIGESTS.get(name)
        if algorithm is None:
            continue
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise invalid(f"Content-Digest {name} is not a byte sequence")
        if not hmac.compare_digest(member.value, algorithm(body).digest()):
            raise invalid("Content-Digest does not match the body", algorithm=name)
        checked += 1
    if not checked:
        raise invalid("Content-Digest must use sha-256 or sha-512")


def _derived(name: str, request: SignedRequest) -> str:
    if name == "@method":
        return request.method.upper()
    if name == "@target-uri":
        return request.target_uri
    parts = urlsplit(request.target_uri)
    if name == "@scheme":
        return parts.scheme.lower()
    if name == "@authority":
        host = (parts.hostname or "").lower()
        default = {"http": 80, "https": 443}.get(parts.scheme)
        return host if parts.port in (None, default) else f"{host}:{parts.port}"
    path = parts.path or "/"
    if name == "@path":
        return path
    if name == "@query":
        return "?" + parts.query
    return path + ("?" + parts.query if parts.query else "")  # @request-target


def _component(item: Item, request: SignedRequest) -> str:
    name = item.value
    if not isinstance(name, str):
        raise invalid("Covered components must be strings")
    if item.params:
        raise invalid(f"Component parameters are not supported ({name})")
    if name.startswith("@"):
        if name not in SUPPORTED_DERIVED:
            raise invalid(f"Unsupported derived component {name}")
        value = _derived(name, request)
    else:
        values = request.headers.get(name)
        if not values:
            raise invalid(f"The covered field {name} is not in the request", missing=name)
        value = ", ".join(v.strip() for v in values)
    return f'"{name}": {value}'


def signature_base(components: InnerList, request: SignedRequest) -> bytes:
    lines = [_component(item, request) for item in components]
    lines.append(f'"@signature-params": {components!s}')
    return "\n".join(lines).encode("utf-8")


def _verify(key: SignatureKey, signature: bytes, base: bytes) -> bool:
    public = keys.load_pem(key.public_key_pem)
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, base)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                return False
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public.verify(der, base, ec.ECDSA(hashes.SHA256()))
        elif key.algorithm == keys.RSA_PSS:
            assert isinstance(public, rsa.RSAPublicKey)  # noqa: S101  # nosec B101
            public.verify(
                signature,
                base,
                padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64),
                hashes.SHA512(),
            )
        else:
            assert isinstance(public, rsa.RSAPublicKey)  # noqa: S101  # nosec B101
            public.verify(signature, base, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _time(params: Mapping[str, object], name: str) -> datetime:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"The signature must have an integer {name} parameter", missing=name)
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise invalid(f"The signature's {name} is out of range") from None


async def _check_one(
    label: str,
    components: InnerList,
    signature: bytes,
    request: SignedRequest,
    active: Sequence[SignatureKey],
    now: datetime,
    claim: NonceClaim,
    app_id: int,
) -> SignatureKey:
    params = components.params
    keyid = params.get("keyid")
    if not isinstance(keyid, str):
        raise invalid("The signature must name its key (keyid)", label=label)
    key = next((k for k in active if keyid in (k.keyid, k.label)), None)
    if key is None:
        raise invalid("No active key of this app has this keyid", label=label, keyid=keyid)
    alg = params.get("alg")
    if alg is not None and alg != key.algorithm:
        raise invalid(f"The key is registered for {key.algorithm}", label=label, keyid=keyid)
    covered = [item.value for item in components]
    needed = list(REQUIRED_COMPONENTS)
    if request.body:
        needed.append("content-digest")
    missing = [name for name in needed if name not in covered]
    if missing:
        raise invalid(f"The signature must cover {', '.join(needed)}", label=label, missing=missing)
    created, expires = _time(params, "created"), _time(params, "expires")
    nonce = params.get("nonce")
    if not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_NONCE:
        raise invalid(
            f"The signature must have a nonce of 1 to {MAX_NONCE} characters", missing="nonce"
        )
    if expires <= created or expires - created > MAX_WINDOW:
        raise invalid(
            "expires must follow created by at most 300 seconds",
            ErrorCode.SIGNATURE_EXPIRED,
            label=label,
        )
    if created > now + CLOCK_SKEW:
        raise invalid("created is in the future", ErrorCode.SIGNATURE_EXPIRED, label=label)
    if expires <= now:
        raise invalid("The signature has expired", ErrorCode.SIGNATURE_EXPIRED, label=label)
    if request.body:
        check_digest(request.headers, request.body)
    if not _verify(key, signature, signature_base(components, request)):
        raise invalid("The signature does not verify", label=label, keyid=keyid)
    # the nonce is spent only by a signature that verified: nobody else can use up a nonce
    if not await claim(f"{app_id}:{key.keyid}:{nonce}", expires + CLOCK_SKEW):
        raise invalid(
            "This signature's nonce was already used", ErrorCode.SIGNATURE_REPLAYED, label=label
        )
    return key


async def verify(
    request: SignedRequest,
    active: Sequence[SignatureKey],
    *,
    app_id: int,
    now: datetime,
    claim: NonceClaim,
) -> SignatureKey | None:
    """The key that signed ``request``; None for an unsigned request allowed to be unsigned.

    Raises ``SignatureRequired`` for an unsigned request of an app with a required key, and
    ``SignatureInvalid``/``SignatureExpired``/``SignatureReplayed`` for a signature that fails.
    """
    if not is_signed(request.headers):
        if any(k.required for k in active):
            raise invalid(
                "This app requires signed requests (RFC 9421)", ErrorCode.SIGNATURE_REQUIRED
            )
        return None
    inputs = _dictionary(request.headers, "signature-input")
    signatures = _dictionary(request.headers, "signature")
    labels = [label for label in inputs if label in signatures]
    if not labels:
        raise invalid("Signature-Input and Signature name no signature in common")
    if len(labels) > MAX_SIGNATURES:
        raise invalid(f"At most {MAX_SIGNATURES} signatures are checked")
    first: DomainError | None = None
    for label in labels:
        components, signature = inputs[label], signatures[label]
        try:
            if not isinstance(components, InnerList):
                raise invalid("A Signature-Input member must be an inner list", label=label)
            if not isinstance(signature, Item) or not isinstance(signature.value, bytes):
                raise invalid("A Signature member must be a byte sequence", label=label)
            return await _check_one(
                label, components, signature.value, request, active, now, claim, app_id
            )
        except DomainError as exc:
            first = first or exc
    assert first is not None  # noqa: S101 - every label failed  # nosec B101
    raise first
