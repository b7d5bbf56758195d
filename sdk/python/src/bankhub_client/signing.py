"""Signed requests (RFC 9421, bankhub's docs/signatures.md), with ``http-message-signatures``.

Install with the ``signatures`` extra (``pip install 'bankhub-client[signatures]'``). Register
the public key with ``add_signature_key`` (or the dashboard), then give the client a
:class:`RequestSigner` with the private key and the ``keyid`` bankhub answered::

    signer = RequestSigner(private_key, key_id=registered.keyid)
    client = BankhubClient(url, client_id=..., service_secret=..., signer=signer)

Every request then covers ``@method``, ``@target-uri`` and, with a body, ``content-digest``,
with ``created``, ``expires`` (two minutes later, within bankhub's 300 s) and a fresh random
``nonce``. A retry is signed again: bankhub accepts a nonce once.
"""

from __future__ import annotations

import datetime as _dt
import secrets
import time
from collections.abc import Callable

import httpx

try:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "signed requests need the signatures extra: pip install 'bankhub-client[signatures]'"
    ) from exc

__all__ = ["PrivateKey", "RequestSigner"]

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _algorithm(key: PrivateKey) -> type[algorithms.HTTPSignatureAlgorithm]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return algorithms.ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("bankhub accepts ECDSA keys on P-256 only")
        return algorithms.ECDSA_P256_SHA256
    if key.key_size < 3072:
        raise ValueError("bankhub accepts RSA keys of 3072 bits or more")
    return algorithms.RSA_PSS_SHA512


class RequestSigner:
    """Signs each request a client sends with one key of the app."""

    def __init__(
        self,
        private_key: PrivateKey,
        *,
        key_id: str,
        lifetime: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < lifetime <= 300:
            raise ValueError("bankhub accepts a signature window of at most 300 seconds")
        self.key_id = key_id
        self._lifetime = lifetime
        self._clock = clock
        self._signer = HTTPMessageSigner(
            signature_algorithm=_algorithm(private_key),
            key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: private_key}),
        )

    def sign(self, request: httpx.Request) -> None:
        """Add ``Signature-Input``, ``Signature`` (and ``Content-Digest``) to ``request``."""
        created = _dt.datetime.fromtimestamp(self._clock(), tz=_dt.UTC)
        body = request.content or None
        self._signer.sign(
            request,
            key_id=self.key_id,
            created=created,
            expires=created + _dt.timedelta(seconds=self._lifetime),
            nonce=secrets.token_hex(16),
            label="bankhub",
            covered_component_ids=("@method", "@target-uri"),
            body=body,
        )
