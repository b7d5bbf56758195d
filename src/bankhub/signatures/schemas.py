"""The wire shapes of ``/v2/signature/key`` and ``/v2/signature/source``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from bankhub.api.schemas import VERSION, wire_time
from bankhub.signatures.models import SignatureKey, SignatureKeySource

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
    #: the ``ks_…`` of the key source that brought the key; null for an uploaded key
    source_id: str | None = None


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
        source_id=key.source_id,
    )


class SignatureSourceIn(msgspec.Struct, forbid_unknown_fields=True):
    #: an https URL serving OpenSSH public-key lines (as https://github.com/USER.keys) or a JWKS
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=290)]
    #: given to every key the source brings: unsigned requests are refused while one is active
    required: bool = False


class SignatureSourceOut(msgspec.Struct):
    id: str
    url: str
    required: bool
    #: pending (never synced), ok, failing (the last good keys kept until grace_until) or
    #: expired (the grace ran out: the source's keys are revoked until a good sync)
    state: str
    #: the active keys the source brought
    keys: int
    #: the entries of the last good answer that were not taken, with the reason
    skipped: list[str]
    last_good_at: str | None
    last_attempt_at: str | None
    last_error: str | None
    failing_since: str | None
    grace_until: str | None
    created_at: str
    created_by: str


class SignatureSourceEnvelope(msgspec.Struct):
    data: SignatureSourceOut
    version: str = VERSION


class SignatureSourceListEnvelope(msgspec.Struct):
    data: list[SignatureSourceOut]
    version: str = VERSION


def source_out(
    source: SignatureKeySource, keys: int, state: str, grace_until: datetime | None
) -> SignatureSourceOut:
    return SignatureSourceOut(
        id=source.public_id,
        url=source.url,
        required=source.required,
        state=state,
        keys=keys,
        skipped=[str(s) for s in source.skipped or []],
        last_good_at=wire_time(source.last_good_at),
        last_attempt_at=wire_time(source.last_attempt_at),
        last_error=source.last_error,
        failing_since=wire_time(source.failing_since),
        grace_until=wire_time(grace_until),
        created_at=wire_time(source.created_at) or "",
        created_by=source.created_by,
    )
