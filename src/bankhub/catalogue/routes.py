"""The service catalogue's routes: ``GET /v2/service``, ``/service.json`` and the services'
media files."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import File

from bankhub.api.openapi import APP_AUTH, APP_SECURITY, E, PublicOperation, errors, query
from bankhub.api.principal import AuthDep, HubDep, public_url
from bankhub.banks import logos
from bankhub.catalogue.schemas import ServiceListEnvelope, ServiceOut, service_out
from bankhub.connect.pages import IMAGE_CSP
from bankhub.errors import ErrorCode, InvalidInput, NotFound
from bankhub.partners import modes
from bankhub.security import scopes

AnyRequest = Request[Any, Any, Any]

MEDIA_PREFIX = "/media/services"


#: ``q``: a search of the catalogue (additive to the seed)
SEARCH = query(
    "Only the services whose name contains this text (any case), whose BIC starts with it "
    "(at least 4 characters) or whose BLZ it is",
    length=(0, 100),
)


def _media_path(hub: HubDep, request: AnyRequest) -> str:
    return f"{public_url(hub, request)}{MEDIA_PREFIX}/"


def _search(q: str | None) -> str | None:
    if q is not None and len(q) > 100:
        raise InvalidInput("q is longer than 100 characters", {"q": q[:100]})
    return q


# Not cached in the server: a cached answer would skip the catalogue's reload (``Hub.ready``),
# and an imported bank the operator enables must show within seconds.
@get(
    "/service.json",
    opt=scopes.public(),
    tags=["service"],
    summary="The service catalogue (public)",
    operation_class=PublicOperation,
    responses=errors(E.BAD_REQUEST),
    description=(
        "Every service partners may connect: the sandbox banks, statement files and the "
        "imported banks the operator has enabled. `q` narrows it (name, BIC or BLZ)."
    ),
)
async def service_json(
    request: AnyRequest, hub: HubDep, q: Annotated[str | None, SEARCH] = None
) -> list[ServiceOut]:
    media_path = _media_path(hub, request)
    return [service_out(service, media_path) for service in hub.catalogue.listed(_search(q))]


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
        "`both` mode (the default) every service. `/service.json` lists the whole catalogue. "
        "Imported banks are listed once the operator enables them; `q` narrows the list "
        "(name, BIC or BLZ)."
    ),
)
async def service_list(
    request: AnyRequest, hub: HubDep, auth: AuthDep, q: Annotated[str | None, SEARCH] = None
) -> ServiceListEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
    media_path = _media_path(hub, request)
    listed = hub.catalogue.listed(_search(q))
    return ServiceListEnvelope(
        data=[service_out(sv, media_path) for sv in modes.visible(app, listed)]
    )


#: what every image answer carries: opened on its own it is inert (no script, no plugins)
MEDIA_HEADERS = {
    "Cache-Control": "public, max-age=86400",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": IMAGE_CSP,
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _image(request: AnyRequest, content: bytes, digest: str | None = None) -> Response[bytes]:
    """A PNG with its ETag; ``304`` when the browser holds that version already."""
    etag = f'"{digest or hashlib.sha256(content).hexdigest()}"'
    headers = {**MEDIA_HEADERS, "ETag": etag}
    held = request.headers.get("if-none-match", "")
    if etag in {tag.strip() for tag in held.split(",")}:
        return Response(b"", status_code=304, headers=headers)
    return Response(content, media_type="image/png", headers=headers)


@get(
    f"{MEDIA_PREFIX}/{{name:str}}",
    opt=scopes.public(),
    tags=["service"],
    summary="A service's logo or cover (public)",
    media_type="image/png",
    operation_class=PublicOperation,
    responses=errors(E.NOT_FOUND),
)
async def service_media(
    request: AnyRequest, hub: HubDep, name: FromPath[str]
) -> File | Response[bytes]:
    # An imported bank's logo is the one bankhub fetched from its logo URL, checked and
    # re-encoded (bankhub.banks.logos), or drawn: never a redirect, so the end user's browser
    # asks no other host (the connect page's img-src 'self' would refuse one anyway).
    catalogue = hub.catalogue
    path = catalogue.media_file(name)
    if path is None:
        bank_id = catalogue.fetched_logo_of(name)
        if bank_id is not None:
            async with hub.db.transaction() as session:
                kept = await logos.stored_logo(session, bank_id)
            if kept is not None:
                return _image(request, kept.png, kept.sha256)
        drawn = catalogue.imported_media(name)
        if drawn is None:
            raise NotFound(
                ErrorCode.NOT_FOUND, f"No media file named {name!r}", {"name": name[:100]}
            )
        return _image(request, drawn)
    return File(
        path=path,
        media_type="image/png",
        content_disposition_type="inline",
        headers=MEDIA_HEADERS,
    )


CATALOGUE_ROUTES = [service_json, service_list, service_media]
