"""The customer's wire shapes (``POST /v2/customer``)."""

from __future__ import annotations

import msgspec

from bankhub.api.schemas import VERSION, Identifier


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    identifier: Identifier


class CustomerOut(msgspec.Struct):
    customer_id: str
    identifier: str


class CustomerEnvelope(msgspec.Struct):
    data: CustomerOut
    version: str = VERSION
