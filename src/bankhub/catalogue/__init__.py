"""The service catalogue: institutions are data (``services.json``), connectors are code.

Each entry carries the seed's public fields plus the connector that serves it and that connector's
parameters. Media files live in ``media/`` beside the data file: ``<slug>-logo.png`` and
``<slug>-cover-{small,medium,large}.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

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
    def __init__(self, services: list[Service], media_dir: Path) -> None:
        self._by_id = {s.id: s for s in services}
        if len(self._by_id) != len(services):
            raise CatalogueError("duplicate service id in the catalogue")
        self.services = sorted(services, key=lambda s: s.id)
        self.media_dir = media_dir

    def get(self, service_id: int) -> Service | None:
        return self._by_id.get(service_id)

    def media_file(self, name: str) -> Path | None:
        """The media file ``name`` if it is one of the catalogue's own files (no path tricks)."""
        allowed = set()
        for s in self.services:
            allowed.add(s.logo_file_name)
            allowed.update(f"{s.slug}-cover-{size}.png" for size in COVER_SIZES)
        if name not in allowed:
            return None
        path = self.media_dir / name
        return path if path.is_file() else None


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


def load_catalogue(path: Path | None = None) -> Catalogue:
    data_file = path or Path(str(files("bankhub.catalogue").joinpath("services.json")))
    entries = json.loads(data_file.read_text(encoding="utf-8"))
    return Catalogue([_parse(e) for e in entries], data_file.parent / "media")


@cache
def default_catalogue() -> Catalogue:
    return load_catalogue()
