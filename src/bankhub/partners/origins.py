"""The origins an app names: the pages that may frame its connect page (the CSP's
``frame-ancestors``) and the pages its browser keys may be used from (referer patterns)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bankhub.errors import DomainError, ErrorCode

MAX_FRAME_ORIGINS = 20

#: an origin, with an optional leading ``*.`` label: nothing a CSP directive could be broken with
_ORIGIN = re.compile(
    r"^(?P<scheme>https?)://(?P<host>(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)(?::(?P<port>[0-9]{1,5}))?$"
)


def parse_frame_origins(
    values: Iterable[str], *, allow_http: bool, field: str = "origins"
) -> list[str]:
    """Each entry as a lower-case origin (``https://host[:port]``, ``https://*.host``).

    Raises DataInvalid naming every entry that is not one (in ``field``): no paths, quotes,
    spaces or semicolons can reach the CSP header. Plain ``http`` only when ``allow_http`` (dev).
    The same shapes serve as an app key's referer patterns.
    """
    origins: list[str] = []
    bad: list[str] = []
    for value in values:
        text = value.strip().lower().rstrip("/")
        match = _ORIGIN.match(text)
        ok = match is not None and (match["scheme"] == "https" or allow_http)
        if ok and match is not None and match["port"] is not None:
            ok = 0 < int(match["port"]) < 65536
        if not ok:
            bad.append(value[:100])
        elif text not in origins:
            origins.append(text)
    if bad:
        need = "https://host[:port] or https://*.host"
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"Not an origin ({need}): " + ", ".join(repr(b) for b in bad),
            {"problems": [f"{field}: {b!r}" for b in bad]},
        )
    if len(origins) > MAX_FRAME_ORIGINS:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"At most {MAX_FRAME_ORIGINS} origins are allowed",
            {"problems": [field]},
        )
    return origins
