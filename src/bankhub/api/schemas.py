"""What every wire shape of the seed's API shares: the version, the timestamp format, the error
envelope. Each noun's own request and response models live with its routes
(``bankhub.<noun>.schemas``), as msgspec Structs (explicit, nothing else)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from bankhub.clock import stamp
from bankhub.errors import ErrorCode

VERSION = "v2"

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
CallbackUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


def wire_time(value: datetime | None) -> str | None:
    """The seed's timestamps: ``2017-08-13T09:19:08.073Z``."""
    return None if value is None else stamp(value)


class ErrorBody(msgspec.Struct):
    """The seed's error envelope; ``extra`` carries what the code names (ids, problems...)."""

    error: ErrorCode
    message: str
    extra: dict[str, Any]
