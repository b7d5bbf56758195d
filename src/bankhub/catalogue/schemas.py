"""The service catalogue's wire shapes (``GET /v2/service``, ``/service.json``)."""

from __future__ import annotations

import msgspec

from bankhub.api.schemas import VERSION
from bankhub.catalogue import Service


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


def service_out(service: Service, media_path: str) -> ServiceOut:
    cta = service.call_to_action
    return ServiceOut(
        id=service.id,
        name=service.name,
        provider=service.provider,
        media_path=media_path,
        cover_file_name=service.cover_file_name,
        logo_file_name=service.logo_file_name,
        color=Color(primary=service.color_primary, secondary=service.color_secondary),
        type=service.type,
        country_code=service.country_code,
        has_balance=service.has_balance,
        call_to_action=CallToActionOut(cta.prompt, cta.text, cta.url) if cta else None,
    )
