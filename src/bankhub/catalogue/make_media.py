"""Draw the shipped catalogue's logos and covers from each service's colours.

Run ``python -m bankhub.catalogue.make_media`` after adding a service to ``services.json``
(the drawing itself: ``bankhub.catalogue.drawing``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bankhub.catalogue import Catalogue, load_catalogue
from bankhub.catalogue.drawing import COVER_SIZES, cover, logo


def write_media(catalogue: Catalogue) -> list[Path]:
    """Write every service's logo and covers into the catalogue's media folder."""
    catalogue.media_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for service in catalogue.services:
        images = {service.logo_file_name: logo(service)}
        for name, size in COVER_SIZES.items():
            images[f"{service.slug}-cover-{name}.png"] = cover(service, size)
        for file_name, data in images.items():
            path = catalogue.media_dir / file_name
            path.write_bytes(data)
            written.append(path)
    return written


def main() -> None:
    written = write_media(load_catalogue())
    total = sum(p.stat().st_size for p in written)
    sys.stdout.write(f"wrote {len(written)} images, {total // 1024} KiB\n")


if __name__ == "__main__":
    main()
