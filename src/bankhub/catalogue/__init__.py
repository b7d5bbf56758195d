"""The service catalogue: institutions are data (``services.json``), connectors are code.

Each entry carries the seed's public fields plus the connector that serves it and that connector's
parameters. Media files live in ``media/`` beside the data file: ``<slug>-logo.png`` and
``<slug>-cover-{small,medium,large}.png``. Entries marked ``dev_only`` (hand-written examples
whose hosts do not exist) are left out outside dev.

Banks imported from a registry (``bankhub.banks``) live in the database; each process merges
them in with :meth:`Catalogue.set_imported` (``bankhub.banks.live``). Their media are drawn from
their colours and initials; a logo fetched from the bank's ``logo_url`` (``bankhub.banks.logos``)
is served from the database instead where one is kept.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from bankhub.catalogue import drawing

log = logging.getLogger("bankhub.catalogue")
#: the slug of an imported bank: ``bank-<service id>``
IMPORTED_SLUG = "bank-{id}"
_IMPORTED_MEDIA = re.compile(r"^bank-([1-9][0-9]{0,9})-(logo|cover-(small|medium|large))\.png$")

COVER_SIZES = ("small", "medium", "large")
SERVICE_TYPES = ("bank", "statement", "other")


@dataclass(frozen=True, slots=True)
class CallToAction:
    prompt: str
    text: str
    url: str


@dataclass(frozen=True, slots=True)
class Service:
    id: int
    slug: str
    name: str
    provider: str
    type: str
    country_code: str
    has_balance: bool
    color_primary: str
    color_secondary: str
    connector: str
    params: dict[str, Any] = field(default_factory=dict)
    call_to_action: CallToAction | None = None
    bic: str | None = None
    #: the domestic bank code (BLZ)
    blz: str | None = None
    #: shown to partners (an imported bank only once the operator enables it)
    listed: bool = True
    #: imported from a registry (stored in the database, not in ``services.json``)
    imported: bool = False
    logo_url: str | None = None
    dev_only: bool = False

    def matches(self, query: str) -> bool:
        """Whether a search for ``query`` finds this service: a part of its name (any case),
        the start of its BIC, or its BLZ."""
        needle = query.strip().casefold()
        if not needle:
            return True
        if needle in self.name.casefold():
            return True
        compact = needle.replace(" ", "").upper()
        if self.bic and len(compact) >= 4 and self.bic.startswith(compact):
            return True
        return bool(self.blz) and compact == self.blz

    @property
    def logo_file_name(self) -> str:
        return f"{self.slug}-logo.png"

    @property
    def cover_file_name(self) -> str:
        """The seed's cover name: insert ``-small``/``-medium``/``-large`` before the extension."""
        return f"{self.slug}-cover.png"


class CatalogueError(ValueError):
    pass


class Catalogue:
    """The shipped (or operator's) services plus the banks imported into the database."""

    def __init__(self, services: list[Service], media_dir: Path) -> None:
        by_id = {s.id: s for s in services}
        if len(by_id) != len(services):
            raise CatalogueError("duplicate service id in the catalogue")
        self.media_dir = media_dir
        self._base = sorted(services, key=lambda s: s.id)
        self._media = {s.logo_file_name for s in self._base} | {
            f"{s.slug}-cover-{size}.png" for s in self._base for size in COVER_SIZES
        }
        #: the version of the imported banks merged in (``bankhub.banks.live``); None: none yet
        self.version: str | None = None
        self._merge([])

    def _merge(self, imported: list[Service]) -> None:
        base_ids = {s.id for s in self._base}
        clashes = [s.id for s in imported if s.id in base_ids]
        if clashes:
            # the operator's catalogue file took these ids after the banks were imported
            log.error("imported banks %s share ids with the catalogue file; left out", clashes)
        kept = [s for s in imported if s.id not in base_ids]
        self.services = self._base + sorted(kept, key=lambda s: s.id)
        self._by_id = {s.id: s for s in self.services}
        self._listed = [s for s in self.services if s.listed]

    def copy(self) -> Catalogue:
        """A catalogue of the same services whose imported banks can be set on their own."""
        return Catalogue(list(self._base), self.media_dir)

    def set_imported(self, services: list[Service], version: str | None) -> None:
        """Replace the imported banks (all of them, enabled or not) with ``services``."""
        self._merge(services)
        self.version = version

    @property
    def base_ids(self) -> list[int]:
        """The ids of the services that do not come from the database."""
        return [s.id for s in self._base]

    def get(self, service_id: int) -> Service | None:
        """Any service, listed or not: a login made before its bank was disabled still syncs."""
        return self._by_id.get(service_id)

    def listed(self, query: str | None = None) -> list[Service]:
        """What partners are shown: every service but the imported banks not enabled, narrowed
        to those a search for ``query`` finds."""
        if not query:
            return self._listed
        return [s for s in self._listed if s.matches(query)]

    def media_file(self, name: str) -> Path | None:
        """The media file ``name`` if it is one of the catalogue's own files (no path tricks)."""
        if name not in self._media:
            return None
        path = self.media_dir / name
        return path if path.is_file() else None

    def fetched_logo_of(self, name: str) -> int | None:
        """The bank id if ``name`` is the logo of an imported bank with a ``logo_url``: its
        logo may be kept in the database (``bankhub.banks.logos``)."""
        match = _IMPORTED_MEDIA.match(name)
        service = self._by_id.get(int(match.group(1))) if match else None
        if match is None or service is None or not service.imported:
            return None
        return service.id if match.group(2) == "logo" and service.logo_url else None

    def imported_media(self, name: str) -> bytes | None:
        """An imported bank's logo or cover drawn from its colours and initials (a logo
        fetched from its ``logo_url`` is served instead where one is kept); None for any
        other name. Never a redirect: the end user's browser talks to bankhub only."""
        match = _IMPORTED_MEDIA.match(name)
        service = self._by_id.get(int(match.group(1))) if match else None
        if match is None or service is None or not service.imported:
            return None
        return _drawn(
            service.name, service.color_primary, service.color_secondary, match.group(3) or ""
        )


@lru_cache(maxsize=256)
def _drawn(name: str, primary: str, secondary: str, size: str) -> bytes:
    """A logo (``size`` empty) or a cover, drawn once per process and name, colours and size."""
    stand_in = Service(0, "", name, "", "bank", "", True, primary, secondary, "")
    if not size:
        return drawing.logo(stand_in)
    return drawing.cover(stand_in, drawing.COVER_SIZES[size])


def imported_service(
    *,
    id: int,
    name: str,
    country_code: str,
    connector: str,
    params: dict[str, Any],
    bic: str,
    blz: str | None,
    color_primary: str,
    color_secondary: str,
    logo_url: str | None,
    enabled: bool,
) -> Service:
    """The catalogue's view of an imported bank (``bankhub.banks``)."""
    return Service(
        id=id,
        slug=IMPORTED_SLUG.format(id=id),
        name=name,
        provider="bankhub",
        type="bank",
        country_code=country_code,
        has_balance=True,
        color_primary=color_primary,
        color_secondary=color_secondary,
        connector=connector,
        params=params,
        bic=bic,
        blz=blz,
        listed=enabled,
        imported=True,
        logo_url=logo_url,
    )


def _parse(entry: dict[str, Any]) -> Service:
    try:
        cta = entry.get("call_to_action")
        service = Service(
            id=int(entry["id"]),
            slug=str(entry["slug"]),
            name=str(entry["name"]),
            provider=str(entry.get("provider", "bankhub")),
            type=str(entry["type"]),
            country_code=str(entry["country_code"]),
            has_balance=bool(entry["has_balance"]),
            color_primary=str(entry["color"]["primary"]),
            color_secondary=str(entry["color"]["secondary"]),
            connector=str(entry["connector"]),
            params=dict(entry.get("params", {})),
            call_to_action=CallToAction(**cta) if cta else None,
            dev_only=bool(entry.get("dev_only", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogueError(f"bad catalogue entry {entry.get('id')!r}: {exc}") from exc
    if service.type not in SERVICE_TYPES:
        raise CatalogueError(f"service {service.id}: type must be one of {SERVICE_TYPES}")
    bundle = service.params.get("ca_bundle")
    if bundle is not None and not (isinstance(bundle, str) and Path(bundle).is_file()):
        # S31: a bank's own trust store must exist, or its connector would fail at first use
        raise CatalogueError(f"service {service.id}: ca_bundle {bundle!r} is not a readable file")
    return service


def load_catalogue(path: Path | None = None, *, dev: bool = True) -> Catalogue:
    """The catalogue file's services; outside ``dev`` without its ``dev_only`` entries."""
    data_file = path or Path(str(files("bankhub.catalogue").joinpath("services.json")))
    entries = json.loads(data_file.read_text(encoding="utf-8"))
    services = [_parse(e) for e in entries]
    return Catalogue([s for s in services if dev or not s.dev_only], data_file.parent / "media")


@cache
def default_catalogue(*, dev: bool = True) -> Catalogue:
    return load_catalogue(dev=dev)
