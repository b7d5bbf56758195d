"""App Templates: the connect page's branding per app (name, logo, colours, welcome and footer).

What a member types reaches end users, so every value is checked here before it is stored:

* texts are plain text, bounded, without control characters (newlines allowed in the two longer
  ones); templates autoescape them, nothing is ever marked safe;
* colours are ``#rrggbb`` exactly, and reach the page only through a stylesheet generated here
  (:func:`stylesheet`), served from our origin under a hash of its content: no ``style=``
  attribute or inline ``<style>``, so the connect page keeps ``style-src 'self'``;
* a logo is PNG or JPEG, recognised from its bytes (the file name and the declared type are
  ignored), at most :data:`MAX_LOGO_BYTES` and :data:`MAX_LOGO_SIDE` pixels a side, structurally
  whole. SVG is refused: it can carry script. The bytes are served from our own origin with
  their sniffed type, ``X-Content-Type-Options: nosniff`` and a sandboxing CSP.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.partners.models import App, AppTemplate

MAX_NAME = 60
MAX_WELCOME = 500
MAX_FOOTER = 300
MAX_PRIVACY_URL = 500
MAX_DATA_NOTICE = 300
MAX_LOGO_BYTES = 200 * 1024
MAX_LOGO_SIDE = 1024
MIN_LOGO_SIDE = 16
PNG = "image/png"
JPEG = "image/jpeg"

_COLOUR = re.compile(r"^#[0-9a-f]{6}$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers that carry the image size (not DHT C4, JPG C8, DAC CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

#: what an app's branding sets, as the dashboard's form and a change name them
FIELDS = (
    "display_name",
    "welcome_text",
    "footer_text",
    "color_primary",
    "color_secondary",
    "privacy_url",
    "data_notice",
)


class BrandingError(ValueError):
    """A value the connect page must not show; the text says what to change."""


@dataclass(frozen=True, slots=True)
class Logo:
    content: bytes
    media_type: str
    width: int
    height: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True, slots=True)
class Brand:
    """What the connect page needs of a template (no image bytes): safe to keep in memory."""

    client_id: str
    display_name: str | None
    welcome_text: str | None
    footer_text: str | None
    color_primary: str | None
    color_secondary: str | None
    logo_hash: str | None
    logo_width: int | None
    logo_height: int | None
    privacy_url: str | None = None
    data_notice: str | None = None

    @property
    def has_colours(self) -> bool:
        return bool(self.color_primary or self.color_secondary)

    @property
    def css_hash(self) -> str:
        return stylesheet_hash(self.color_primary, self.color_secondary)

    @property
    def css_url(self) -> str:
        return f"/v2/connect/brand/{self.client_id}/{self.css_hash}.css"

    @property
    def logo_url(self) -> str | None:
        if not self.logo_hash:
            return None
        return f"/v2/connect/brand/{self.client_id}/logo-{self.logo_hash[:32]}"


# --- checking what a member typed ---------------------------------------------------------------


def clean_text(value: str, *, limit: int, label: str, multiline: bool) -> str | None:
    """Plain text, trimmed; ``None`` when empty. Control characters (and, unless ``multiline``,
    line breaks) are refused rather than silently dropped."""
    text = value.replace("\r\n", "\n").strip()
    if not text:
        return None
    if len(text) > limit:
        raise BrandingError(f"{label} is at most {limit} characters.")
    allowed = {"\n"} if multiline else set()
    if any(not ch.isprintable() and ch not in allowed for ch in text):
        raise BrandingError(f"{label} may hold only printable characters.")
    return text


def clean_https_url(value: str, *, limit: int, label: str) -> str | None:
    """An https URL with a host and no spaces or control characters; ``None`` when empty."""
    text = value.strip()
    if not text:
        return None
    parts = urlsplit(text)
    if (
        len(text) > limit
        or parts.scheme != "https"
        or not parts.hostname
        or any(ch.isspace() or not ch.isprintable() for ch in text)
    ):
        raise BrandingError(f"{label} must be an https:// address of at most {limit} characters.")
    return text


def clean_colour(value: str, *, label: str) -> str | None:
    text = value.strip().lower()
    if not text:
        return None
    if not _COLOUR.match(text):
        raise BrandingError(f"{label} must be a colour written #rrggbb (for example #1f5fbf).")
    return text


def _png_size(data: bytes) -> tuple[int, int]:
    """Walk the chunks (CRC checked): IHDR first, IEND last, nothing after it."""
    position = len(_PNG_SIGNATURE)
    size: tuple[int, int] | None = None
    first = True
    while position + 12 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > len(data):
            raise BrandingError("The PNG file is cut short.")
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) != crc:
            raise BrandingError("The PNG file is damaged.")
        if first:
            if kind != b"IHDR" or length != 13:
                raise BrandingError("The PNG file does not start with its header.")
            size = struct.unpack(">II", body[:8])
            first = False
        if kind == b"IEND":
            if end != len(data):
                raise BrandingError("The PNG file has data after its end.")
            if size is None:
                break
            return size
        position = end
    raise BrandingError("The PNG file is cut short.")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """The frame header's size; the file must end with the end-of-image marker."""
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise BrandingError("The JPEG file is cut short.")
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise BrandingError("The JPEG file is damaged.")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if length < 2 or position + 2 + length > len(data):
            raise BrandingError("The JPEG file is damaged.")
        if marker in _SOF:
            if length < 7:
                raise BrandingError("The JPEG file is damaged.")
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            break
        position += 2 + length
    raise BrandingError("The JPEG file has no image size.")


def check_logo(data: bytes) -> Logo:
    """A PNG or JPEG recognised from its bytes, within the limits, or BrandingError."""
    if not data:
        raise BrandingError("The logo file is empty.")
    if len(data) > MAX_LOGO_BYTES:
        raise BrandingError(f"The logo is at most {MAX_LOGO_BYTES // 1024} KB.")
    if data.startswith(_PNG_SIGNATURE):
        media_type, (width, height) = PNG, _png_size(data)
    elif data.startswith(b"\xff\xd8\xff"):
        media_type, (width, height) = JPEG, _jpeg_size(data)
    else:
        raise BrandingError("The logo must be a PNG or JPEG image (SVG is not accepted).")
    sides = (width, height)
    if not all(MIN_LOGO_SIDE <= side <= MAX_LOGO_SIDE for side in sides):
        raise BrandingError(
            f"The logo must be {MIN_LOGO_SIDE} to {MAX_LOGO_SIDE} pixels wide and high "
            f"(this one is {width}×{height})."
        )
    return Logo(data, media_type, width, height)


# --- the stylesheet -----------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    channels = []
    for index in (1, 3, 5):
        value = int(colour[index : index + 2], 16) / 255
        channels.append(value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def ink_on(colour: str) -> str:
    """White or near-black, whichever reads better on ``colour`` (WCAG contrast ratio)."""
    light = _luminance(colour)
    on_white = 1.05 / (light + 0.05)
    on_dark = (light + 0.05) / (_luminance("#17202a") + 0.05)
    return "#ffffff" if on_white >= on_dark else "#17202a"


def stylesheet(primary: str | None, secondary: str | None) -> str:
    """The app's colours as custom properties of ``.branded``; the page's own CSS uses them.

    Only values that passed :func:`clean_colour` reach here (checked again: the text is CSS).
    """
    lines = [".branded {"]
    if primary and _COLOUR.match(primary):
        lines += [f"  --accent: {primary};", f"  --accent-ink: {ink_on(primary)};"]
    if secondary and _COLOUR.match(secondary):
        lines += [f"  --brand-bar: {secondary};", f"  --brand-bar-ink: {ink_on(secondary)};"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def stylesheet_hash(primary: str | None, secondary: str | None) -> str:
    return hashlib.sha256(stylesheet(primary, secondary).encode()).hexdigest()[:32]


# --- storing and reading ------------------------------------------------------------------------


async def template_of(session: AsyncSession, app_id: int) -> AppTemplate | None:
    return await session.get(AppTemplate, app_id)


def brand_of(app: App, row: AppTemplate | None) -> Brand | None:
    if row is None:
        return None
    return Brand(
        client_id=app.client_id,
        display_name=row.display_name,
        welcome_text=row.welcome_text,
        footer_text=row.footer_text,
        color_primary=row.color_primary,
        color_secondary=row.color_secondary,
        logo_hash=row.logo_hash,
        logo_width=row.logo_width,
        logo_height=row.logo_height,
        privacy_url=row.privacy_url,
        data_notice=row.data_notice,
    )


@dataclass(frozen=True, slots=True)
class TemplateChange:
    """A checked form: everything but the logo is replaced as given."""

    display_name: str | None
    welcome_text: str | None
    footer_text: str | None
    color_primary: str | None
    color_secondary: str | None
    privacy_url: str | None = None
    data_notice: str | None = None
    #: a new logo, or None to keep the one there is
    logo: Logo | None = None
    remove_logo: bool = False


def check_change(
    *,
    display_name: str,
    welcome_text: str,
    footer_text: str,
    color_primary: str,
    color_secondary: str,
    logo: bytes | None,
    remove_logo: bool,
    privacy_url: str = "",
    data_notice: str = "",
) -> TemplateChange:
    """Every field checked at once; BrandingError names the first problem."""
    return TemplateChange(
        display_name=clean_text(display_name, limit=MAX_NAME, label="The name", multiline=False),
        welcome_text=clean_text(
            welcome_text, limit=MAX_WELCOME, label="The welcome text", multiline=True
        ),
        footer_text=clean_text(
            footer_text, limit=MAX_FOOTER, label="The footer text", multiline=True
        ),
        color_primary=clean_colour(color_primary, label="The primary colour"),
        color_secondary=clean_colour(color_secondary, label="The secondary colour"),
        privacy_url=clean_https_url(
            privacy_url, limit=MAX_PRIVACY_URL, label="The privacy and terms link"
        ),
        data_notice=clean_text(
            data_notice, limit=MAX_DATA_NOTICE, label="Who handles the data", multiline=False
        ),
        logo=check_logo(logo) if logo else None,
        remove_logo=remove_logo and not logo,
    )


async def save(
    session: AsyncSession, app: App, change: TemplateChange, *, actor: str, now: datetime
) -> tuple[AppTemplate, dict[str, object]]:
    """Store the change; returns the row and what changed (for the audit entry)."""
    row = await template_of(session, app.id)
    if row is None:
        row = AppTemplate(app_id=app.id, updated_by=actor[:260], updated_at=now)
        session.add(row)
    changed: dict[str, object] = {}
    for name in FIELDS:
        value = getattr(change, name)
        if getattr(row, name) != value:
            changed[name] = value
            setattr(row, name, value)
    if change.logo is not None:
        row.logo = change.logo.content
        row.logo_type = change.logo.media_type
        row.logo_hash = change.logo.digest
        row.logo_width, row.logo_height = change.logo.width, change.logo.height
        changed["logo"] = {
            "sha256": change.logo.digest,
            "type": change.logo.media_type,
            "bytes": len(change.logo.content),
        }
    elif change.remove_logo and row.logo_hash is not None:
        row.logo = row.logo_type = row.logo_hash = None
        row.logo_width = row.logo_height = None
        changed["logo"] = None
    row.updated_by, row.updated_at = actor[:260], now
    await session.flush()
    return row, changed


async def logo_bytes(session: AsyncSession, app_id: int, digest: str) -> tuple[bytes, str] | None:
    """The logo whose hash starts with ``digest`` (the URL's), with its type."""
    found = (
        await session.execute(
            select(AppTemplate.logo, AppTemplate.logo_type, AppTemplate.logo_hash).where(
                AppTemplate.app_id == app_id
            )
        )
    ).one_or_none()
    if found is None or found[0] is None or not found[2] or found[2][:32] != digest:
        return None
    return bytes(found[0]), str(found[1])
