"""Signing requests in tests with ``http-message-signatures``, an implementation of RFC 9421
independent of bankhub's verifier."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from tests.conftest import BASE_URL

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

ALGORITHMS: dict[str, Any] = {
    "ed25519": algorithms.ED25519,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
    "rsa-pss-sha512": algorithms.RSA_PSS_SHA512,
    "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
}


def new_private_key(kind: str) -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ecdsa-p256-sha256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def openssh(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


@dataclass
class Signer:
    key: PrivateKey
    algorithm: str
    keyid: str

    def headers(
        self,
        method: str,
        path: str,
        *,
        now: datetime,
        body: Any = None,
        headers: dict[str, str] | None = None,
        created: datetime | None = None,
        expires: datetime | None = None,
        nonce: str | None = None,
        with_nonce: bool = True,
        use_existing_digest: bool = False,
        covered: tuple[str, ...] = ("@method", "@target-uri"),
        base_url: str = BASE_URL,
    ) -> tuple[dict[str, str], bytes]:
        """The request's header fields with Signature-Input, Signature and (for a body)
        Content-Digest, and the body bytes to send."""
        content = b"" if body is None else json.dumps(body).encode()
        prepared = requests.Request(
            method, base_url + path, headers=dict(headers or {}), data=content or None
        ).prepare()
        signer = HTTPMessageSigner(
            signature_algorithm=ALGORITHMS[self.algorithm],
            key_resolver=MappingKeyResolver(public_keys={}, private_keys={self.keyid: self.key}),
        )
        created = created or now
        signer.sign(
            prepared,
            key_id=self.keyid,
            created=created,
            expires=expires or created + timedelta(minutes=2),
            nonce=(nonce or secrets.token_urlsafe(16)) if with_nonce else None,
            label="sig1",
            covered_component_ids=covered,
            body=content or None,
            use_existing_digest=use_existing_digest,
        )
        out = {
            k.lower(): v if isinstance(v, str) else v.decode()
            for k, v in prepared.headers.items()
            if k.lower() != "content-length"
        }
        return out, content
