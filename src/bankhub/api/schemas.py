"""Request and response models of the seed's API, as msgspec Structs (explicit, nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from bankhub.api.errors import ErrorCode

VERSION = "v2"

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
CallbackUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


def wire_time(value: datetime | None) -> str | None:
    """The seed's timestamps: ``2017-08-13T09:19:08.073Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    identifier: Identifier


class CustomerOut(msgspec.Struct):
    customer_id: str
    identifier: str


class CustomerEnvelope(msgspec.Struct):
    data: CustomerOut
    version: str = VERSION


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    service_id: int
    callback_url: CallbackUrl


class ReconnectIn(msgspec.Struct, forbid_unknown_fields=True):
    callback_url: CallbackUrl


class TokenOut(msgspec.Struct):
    id: str
    connect_url: str


class TokenEnvelope(msgspec.Struct):
    data: TokenOut
    version: str = VERSION


class Color(msgspec.Struct):
    primary: str
    secondary: str


class CallToActionOut(msgspec.Struct):
    prompt: str
    text: str
    url: str


class ServiceOut(msgspec.Struct):
    id: int
    name: str
    provider: str
    media_path: str
    cover_file_name: str
    logo_file_name: str
    color: Color
    type: str
    country_code: str
    has_balance: bool
    call_to_action: CallToActionOut | None


class ServiceListEnvelope(msgspec.Struct):
    data: list[ServiceOut]
    version: str = VERSION


class AccountOut(msgspec.Struct):
    id: int
    original_id: str
    login_id: int
    name: str
    #: null when no source ever stated the account's balance (a statement file without one)
    balance: str | None
    currency: str
    type: str


class AccountListEnvelope(msgspec.Struct):
    data: list[AccountOut]
    version: str = VERSION


class TransactionOut(msgspec.Struct):
    id: int
    original_id: str
    date: str
    amount: str
    currency: str
    description: str
    category: str
    meta: dict[str, Any] | None


class TransactionListEnvelope(msgspec.Struct):
    data: list[TransactionOut]
    version: str = VERSION


class ActivateOut(msgspec.Struct):
    id: int
    activate: bool


class DeactivateOut(msgspec.Struct):
    id: int
    deActivate: bool


class ActivateEnvelope(msgspec.Struct):
    data: ActivateOut
    version: str = VERSION


class DeactivateEnvelope(msgspec.Struct):
    data: DeactivateOut
    version: str = VERSION


class RefreshOut(msgspec.Struct):
    id: int
    refreshed: bool
    last_refresh_at: str | None
    next_refresh_possible_at: str
    #: beyond the seed: the login's status after the attempt (``login_`` + status)
    status: str


class RefreshEnvelope(msgspec.Struct):
    data: RefreshOut
    version: str = VERSION


class DeletedOut(msgspec.Struct):
    id: int
    deleted: bool


class DeletedEnvelope(msgspec.Struct):
    data: DeletedOut
    version: str = VERSION


class ConsentOut(msgspec.Struct):
    """What the user agreed to share on the connect page, and until when."""

    scopes: list[str]
    granted_at: str | None
    expires_at: str | None
    history_days: int | None


class LoginOut(msgspec.Struct):
    id: int
    customer_id: str
    service_id: int
    status: str
    active: bool
    consent_expires_at: str | None
    last_refresh_at: str | None
    next_refresh_possible_at: str | None
    created_at: str
    consent: ConsentOut
    #: messages the provider attached to the last read, HTML-escaped plain text
    notices: list[str]


class LoginEnvelope(msgspec.Struct):
    data: LoginOut
    version: str = VERSION


class ErrorBody(msgspec.Struct):
    """The seed's error envelope; ``extra`` carries what the code names (ids, problems...)."""

    error: ErrorCode
    message: str
    extra: dict[str, Any]
