"""A service's logo and covers, drawn from its name and colours.

The images are flat shapes (a disc, a band, block initials) so they compress to a few kilobytes;
the PNG encoder is the standard library's ``zlib`` and ``struct``, nothing else. The shipped
catalogue's files are written by ``python -m bankhub.catalogue.make_media``; an imported bank's
are drawn when first asked for (``bankhub.catalogue``).
"""

from __future__ import annotations

import struct
import unicodedata
import zlib
from typing import Protocol

RGB = tuple[int, int, int]


class Drawn(Protocol):
    """What a picture is drawn from: a catalogue service, or an imported bank's stand-in."""

    @property
    def name(self) -> str: ...
    @property
    def color_primary(self) -> str: ...
    @property
    def color_secondary(self) -> str: ...


LOGO_SIZE = (128, 128)
COVER_SIZES = {"small": (320, 120), "medium": (640, 240), "large": (1280, 480)}

# 5x7 block capitals
_GLYPHS = {
    "A": ".###.#...##...######...##...##...#",
    "B": "####.#...##...#####.#...##...#####.",
    "C": ".#####....#....#....#....#.....####",
    "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....",
    "G": ".#####....#....#.####...##...#.###.",
    "H": "#...##...##...#######...##...##...#",
    "I": "#####..#....#....#....#....#..#####",
    "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##.#.##...##...##...#",
    "N": "#...###..##.#.##..###...##...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.###.###...#",
    "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..",
    "Z": "#####....#...#...#...#...#....#####",
}
_SKIP_WORDS = {"SANDBOX"}


class Canvas:
    """An RGB image as rows of bytes, drawn with flat shapes row span by row span."""

    def __init__(self, width: int, height: int, background: RGB) -> None:
        self.width, self.height = width, height
        self.rows = [bytearray(bytes(background) * width) for _ in range(height)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: RGB) -> None:
        x0, x1 = max(0, x0), min(self.width, x1)
        if x1 <= x0:
            return
        span = bytes(color) * (x1 - x0)
        for y in range(max(0, y0), min(self.height, y1)):
            self.rows[y][x0 * 3 : x1 * 3] = span

    def disc(self, cx: int, cy: int, radius: int, color: RGB) -> None:
        for y in range(max(0, cy - radius), min(self.height, cy + radius + 1)):
            dy = y - cy
            half = int((radius * radius - dy * dy) ** 0.5)
            self.rect(cx - half, y, cx + half + 1, y + 1, color)

    def text(self, letters: str, cx: int, cy: int, scale: int, color: RGB) -> None:
        width = (len(letters) * 6 - 1) * scale
        x = cx - width // 2
        y0 = cy - 7 * scale // 2
        for letter in letters:
            glyph = _GLYPHS.get(letter)
            if glyph:
                for index, cell in enumerate(glyph):
                    if cell == "#":
                        row, col = divmod(index, 5)
                        gx, gy = x + col * scale, y0 + row * scale
                        self.rect(gx, gy, gx + scale, gy + scale, color)
            x += 6 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"".join(
            (
                b"\x89PNG\r\n\x1a\n",
                chunk(b"IHDR", header),
                chunk(b"IDAT", zlib.compress(raw, 9)),
                chunk(b"IEND", b""),
            )
        )


def _rgb(hex_color: str) -> RGB:
    value = int(hex_color.lstrip("#"), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def initials(name: str) -> str:
    """Up to two capitals from the name, ignoring "Sandbox" and country codes."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().upper()
    words = [w for w in plain.split() if w not in _SKIP_WORDS and len(w) > 2 and w[0].isalpha()]
    return "".join(w[0] for w in words[:2]) or "SB"


def logo(service: Drawn) -> bytes:
    primary, secondary = _rgb(service.color_primary), _rgb(service.color_secondary)
    width, height = LOGO_SIZE
    canvas = Canvas(width, height, primary)
    canvas.disc(width // 2, height // 2, width * 13 // 32, secondary)
    canvas.text(initials(service.name), width // 2, height // 2, width // 22, primary)
    return canvas.png()


def cover(service: Drawn, size: tuple[int, int]) -> bytes:
    primary, secondary = _rgb(service.color_primary), _rgb(service.color_secondary)
    width, height = size
    canvas = Canvas(width, height, primary)
    canvas.disc(width - height // 2, height // 2, height * 3 // 4, secondary)
    canvas.rect(0, height - height // 8, width, height, secondary)
    canvas.text(initials(service.name), width // 3, height * 7 // 16, height // 14, secondary)
    return canvas.png()
