"""The Berlin Group request signature: ``Digest``, ``Signature`` and ``TPP-Signature-Certificate``.

NextGenPSD2's "Implementation Guidelines, Signing HTTP messages" profile draft-cavage-http-
signatures-10: the body's SHA-256 goes into ``Digest``; ``Signature`` signs the lines
``name: value`` of ``digest``, ``x-request-id``, ``date`` and, where the request carries them,
``psu-id``, ``psu-corporate-id`` and ``tpp-redirect-uri`` (names in lower case, in that order,
joined by ``\\n``) with the QSealC's key; its ``keyId`` names the certificate by serial number
(hex) and issuer DN, and the certificate itself travels base64 DER in
``TPP-Signature-Certificate``. RSA keys sign ``rsa-sha256`` (PKCS#1 v1.5), EC keys
``ecdsa-sha256`` (the DER signature).

The profile is small and fixed, and the HTTP-signature packages on PyPI implement later drafts
(RFC 9421) or other profiles; so the signer is ours, and the tests verify its output with
``cryptography`` on a separate code path, in a peer bank that refuses anything else.
"""

from __future__ import annotations

import base64
import hashlib
from email.utils import format_datetime

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from bankhub.clock import Clock

#: always signed, in this order
SIGNED_ALWAYS = ("digest", "x-request-id", "date")
#: signed when the request carries them
SIGNED_WHEN_PRESENT = ("psu-id", "psu-corporate-id", "tpp-redirect-uri")


def digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


class RequestSigner:
    """Signs XS2A requests with a QSealC certificate and its key."""

    def __init__(
        self,
        certificate: x509.Certificate,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        clock: Clock,
    ) -> None:
        self.key = key
        self.clock = clock
        self.algorithm = "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ecdsa-sha256"
        self.key_id = f"SN={certificate.serial_number:X},CA={certificate.issuer.rfc4514_string()}"
        self.certificate_header = base64.b64encode(
            certificate.public_bytes(serialization.Encoding.DER)
        ).decode()

    def sign(self, request: httpx.Request) -> None:
        """Add ``Digest``, ``Date`` (unless set), ``TPP-Signature-Certificate`` and ``Signature``
        to a request whose body is final (built, not streamed)."""
        headers = request.headers
        headers["Digest"] = digest(request.content)
        if "date" not in headers:
            headers["Date"] = format_datetime(self.clock(), usegmt=True)
        headers["TPP-Signature-Certificate"] = self.certificate_header
        names = [*SIGNED_ALWAYS, *(n for n in SIGNED_WHEN_PRESENT if n in headers)]
        signing_string = "\n".join(f"{name}: {headers[name].strip()}" for name in names)
        signature = self._sign(signing_string.encode())
        headers["Signature"] = (
            f'keyId="{self.key_id}",algorithm="{self.algorithm}",'
            f'headers="{" ".join(names)}",signature="{base64.b64encode(signature).decode()}"'
        )

    def _sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
