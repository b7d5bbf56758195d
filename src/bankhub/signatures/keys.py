"""Reading a partner's public key: PEM SubjectPublicKeyInfo, an OpenSSH line or a JWK.

``cryptography`` reads the first two and PyJWT (already a dependency) the JWK; only the checks
that decide what bankhub accepts (the key types and sizes, the RFC 9421 algorithm of each) and
the RFC 7638 thumbprint, a few lines of canonical JSON, are our own.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bankhub.errors import DomainError, ErrorCode

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"
RSA_PSS = "rsa-pss-sha512"
RSA_V15 = "rsa-v1_5-sha256"
#: the RFC 9421 algorithms a key of each type may be registered for (the first is the default)
RSA_ALGORITHMS = (RSA_PSS, RSA_V15)
MIN_RSA_BITS = 3072
MAX_KEY_TEXT = 16_384


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key: PublicKey
    algorithm: str
    keyid: str
    fingerprint: str
    pem: str


def _invalid(message: str, field: str = "public_key") -> DomainError:
    return DomainError(ErrorCode.DATA_INVALID, message, {"problems": [field]})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def thumbprint(key: PublicKey) -> str:
    """RFC 7638: SHA-256 of the key's required JWK members, sorted, without whitespace."""
    members: dict[str, str]
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
    else:
        rsa_numbers = key.public_numbers()
        members = {
            "e": _b64url(_uint(rsa_numbers.e)),
            "kty": "RSA",
            "n": _b64url(_uint(rsa_numbers.n)),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def fingerprint(key: PublicKey) -> str:
    """``SHA256:…`` as ``ssh-keygen -l`` prints it, over the key's OpenSSH encoding."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).rstrip(b"=").decode()


def _load(text: str) -> object:
    stripped = text.strip()
    try:
        if stripped.startswith("{"):
            jwk = json.loads(stripped)
            if isinstance(jwk, dict) and "d" in jwk:
                raise _invalid("This JWK holds a private key: register the public key only")
            return jwt.PyJWK(jwk).key
        if stripped.startswith("-----BEGIN"):
            if "PRIVATE KEY" in stripped.split("\n", 1)[0]:
                raise _invalid("This is a private key: register the public key only")
            return serialization.load_pem_public_key(stripped.encode())
        return serialization.load_ssh_public_key(stripped.encode())
    except DomainError:
        raise
    except (ValueError, UnsupportedAlgorithm, jwt.PyJWKError, jwt.InvalidKeyError) as exc:
        raise _invalid(
            "public_key must be a PEM public key (SubjectPublicKeyInfo), an OpenSSH public-key "
            f"line or a JWK ({type(exc).__name__})"
        ) from None


def parse(text: str, algorithm: str | None = None) -> ParsedKey:
    """The key in ``text``, checked: Ed25519, ECDSA P-256 or RSA of at least 3072 bits."""
    if not text.strip() or len(text) > MAX_KEY_TEXT:
        raise _invalid("public_key is empty or too long")
    key = _load(text)
    if isinstance(key, ed25519.Ed25519PublicKey):
        allowed: tuple[str, ...] = (ED25519,)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise _invalid(f"ECDSA keys must be on P-256; this one is on {key.curve.name}")
        allowed = (ECDSA_P256,)
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise _invalid(
                f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {key.key_size}"
            )
        allowed = RSA_ALGORITHMS
    else:
        raise _invalid("Only Ed25519, ECDSA P-256 and RSA (3072 bits or more) keys are accepted")
    if algorithm is not None and algorithm not in allowed:
        raise _invalid(
            f"algorithm {algorithm} does not fit this key; use one of {', '.join(allowed)}",
            "algorithm",
        )
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return ParsedKey(key, algorithm or allowed[0], thumbprint(key), fingerprint(key), pem)


def load_pem(pem: str) -> PublicKey:
    """A key stored by :func:`parse` (already checked when it was registered)."""
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError("not a signature key")
    return key
