"""The institution's FinTS parameters, read from the catalogue entry and the platform options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from bankhub.connectors.base import ProviderUnavailable

_BLZ = re.compile(r"^\d{8}$")
#: the product version sent in HKVVB (at most five characters)
PRODUCT_VERSION = "1.0"
DEFAULT_TIMEOUT_SECONDS = Decimal(30)


@dataclass(frozen=True, slots=True)
class BankParams:
    """Where and how to reach one bank's FinTS server."""

    blz: str
    url: str
    product_id: str
    #: the limit for one HTTP request to the bank
    timeout_seconds: float

    @property
    def operation_timeout_seconds(self) -> float:
        """The limit for one connector call, which may take several requests (paging)."""
        return self.timeout_seconds * 4


def _setting(institution: Mapping[str, Any], options: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if options.get(name) not in (None, ""):
            return options[name]
    for name in names:
        if institution.get(name) not in (None, ""):
            return institution[name]
    return None


def bank_params(institution: Mapping[str, Any], options: Mapping[str, Any]) -> BankParams:
    """Validate the catalogue parameters; a misconfigured entry is named in the message."""
    name = str(institution.get("name") or institution.get("slug") or "this bank")
    blz = str(institution.get("blz") or "").replace(" ", "")
    if not _BLZ.match(blz):
        raise ProviderUnavailable(f"{name}: the catalogue entry needs an 8-digit 'blz'")
    url = str(institution.get("fints_url") or institution.get("url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ProviderUnavailable(f"{name}: the catalogue entry needs the bank's 'fints_url'")
    product_id = _setting(institution, options, "fints_product_id", "product_id")
    if not product_id:
        raise ProviderUnavailable(
            f"{name}: no FinTS product id is configured (setting 'fints_product_id')"
        )
    raw_timeout = _setting(institution, options, "fints_timeout_seconds", "timeout_seconds")
    try:
        timeout = Decimal(str(raw_timeout)) if raw_timeout is not None else DEFAULT_TIMEOUT_SECONDS
    except InvalidOperation:
        raise ProviderUnavailable(f"{name}: 'fints_timeout_seconds' is not a number") from None
    if not timeout > 0:
        raise ProviderUnavailable(f"{name}: 'fints_timeout_seconds' must be positive")
    return BankParams(blz=blz, url=url, product_id=str(product_id), timeout_seconds=float(timeout))
