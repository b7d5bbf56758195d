"""The service catalogue's routes: ``GET /v2/service``, ``/service.json`` and the services'
media files."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import File

from bankhub.api.openapi import APP_AUTH, APP_SECURITY, E, PublicOperation, errors
from bankhub.api.principal import AuthDep, HubDep, public_url
from bankhub.catalogue.schemas import ServiceListEnvelope, ServiceOut, service_out
from bankhub.errors import ErrorCode, NotFound
from bankhub.partners import modes
from bankhub.security import scopes

AnyRequest = Request[Any, Any, Any]

MEDIA_PREFIX = "/media/services"


def _media_path(hub: HubDep, request: AnyRequest) -> str:
    return f"{public_url(hub, request)}{MEDIA_PREFIX}/"


@get(
    "/service.json",
    opt=scopes.public(),
    tags=["service"],
    summary="The service catalogue (public)",
    cache=300,
    operation_class=PublicOperation,
    responses=errors(),
)
async def service_json(request: AnyRequest, hub: HubDep) -> list[ServiceOut]:
    media_path = _media_path(hub, request)
    return [service_out(service, media_path) for service in hub.catalogue.services]


@get(
    "/v2/service",
    opt=scopes.read(),
    tags=["service"],
    summary="The service catalogue",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
    description=(
        "The services the calling app may connect: an app in `sandbox` mode sees only the "
        "sandbox banks, one in `live` mode only real institutions and statement files, one in "
        "`both` mode (the default) every service. `/service.json` lists the whole catalogue."
    ),
)
async def service_list(request: AnyRequest, hub: HubDep, auth: AuthDep) -> ServiceListEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
    media_path = _media_path(hub, request)
    return ServiceListEnvelope(
        data=[service_out(sv, media_path) for sv in modes.visible(app, hub.catalogue.services)]
    )


@get(
    f"{MEDIA_PREFIX}/{{name:str}}",
    opt=scopes.public(),
    tags=["service"],
    summary="A service's logo or cover (public)",
    media_type="image/png",
    operation_class=PublicOperation,
    responses=errors(E.NOT_FOUND),
)
async def service_media(hub: HubDep, name: FromPath[str]) -> File:
    path = hub.catalogue.media_file(name)
    if path is None:
        raise NotFound(ErrorCode.NOT_FOUND, f"No media file named {name!r}", {"name": name[:100]})
    return File(
        path=path,
        media_type="image/png",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=86400"},
    )


CATALOGUE_ROUTES = [service_json, service_list, service_media]
