"""The wire shapes of ``/v2/signature/key``."""

from __future__ import annotations

from typing import Annotated

import msgspec

from bankhub.api.schemas import VERSION, wire_time
from bankhub.signatures.models import SignatureKey

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@-]+$")]


class SignatureKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    #: PEM SubjectPublicKeyInfo, an OpenSSH public-key line, or a JWK (as a JSON string)
    public_key: Annotated[str, msgspec.Meta(min_length=1, max_length=16_384)]
    label: Label | None = None
    #: for RSA keys: rsa-pss-sha512 (the default) or rsa-v1_5-sha256
    algorithm: str | None = None
    #: unsigned requests of the app are refused while a required key is active
    required: bool = False


class SignatureKeyOut(msgspec.Struct):
    id: str
    keyid: str
    label: str | None
    algorithm: str
    fingerprint: str
    public_key: str
    required: bool
    source: str
    created_at: str
    created_by: str
    revoked_at: str | None
    revoked_by: str | None


class SignatureKeyEnvelope(msgspec.Struct):
    data: SignatureKeyOut
    version: str = VERSION


class SignatureKeyListEnvelope(msgspec.Struct):
    data: list[SignatureKeyOut]
    version: str = VERSION


def out(key: SignatureKey) -> SignatureKeyOut:
    return SignatureKeyOut(
        id=key.public_id,
        keyid=key.keyid,
        label=key.label,
        algorithm=key.algorithm,
        fingerprint=key.fingerprint,
        public_key=key.public_key_pem,
        required=key.required,
        source=key.source,
        created_at=wire_time(key.created_at) or "",
        created_by=key.created_by,
        revoked_at=wire_time(key.revoked_at),
        revoked_by=key.revoked_by,
    )
