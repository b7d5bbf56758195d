"""What a FinTS TAN challenge shows besides its text: a photoTAN/QR image, or a chipTAN flicker.

python-fints decodes the bank's challenge (``NeedTANResponse``): ``challenge_matrix`` is the
image a photoTAN or QR-TAN app scans (media type and bytes), ``challenge_hhduc`` the HHD/UC data
a chipTAN reader takes off the screen. The flicker code is re-encoded by python-fints itself
(:func:`fints.hhd.flicker.code_to_bitstream`: a sync pattern, then every half-byte as a clock
bar and four data bars); what is ours is drawing those frames as an image that animates without
JavaScript. No maintained library draws HHD flicker codes for a web page (python-fints prints
them to a terminal), and an SVG whose bars change colour with SMIL ``<animate>`` needs no
library: the connect page allows no script, and a browser plays SMIL inside an ``<img>``.

The same decoding gives the "chipTAN manuell" fallback: the start code and the data elements
the user keys into the reader instead.
"""

from __future__ import annotations

from fints.hhd import flicker as hhd

from bankhub.connectors.base import Challenge, ChallengeKind

#: how long one frame shows: 50 ms is python-fints' own rate and one readers keep up with
FRAME_SECONDS = 0.05
_BAR_WIDTH = 44
_GAP = 16
_HEIGHT = 120
_MARGIN = 20
_DARK, _LIGHT = "#000", "#fff"
#: the leading bytes of each image type a bank may send, so a mislabelled image is not shown
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
#: the largest image taken from a bank (a photoTAN mosaic is a few kilobytes)
MAX_IMAGE_BYTES = 512 * 1024


def image(matrix: object) -> Challenge | None:
    """The photoTAN/QR-TAN image of ``challenge_matrix``; None unless it is a real image."""
    if not isinstance(matrix, tuple) or len(matrix) != 2:
        return None
    media_type, data = str(matrix[0]).strip().lower(), matrix[1]
    if not isinstance(data, bytes) or not 0 < len(data) <= MAX_IMAGE_BYTES:
        return None
    if not data.startswith(_MAGIC.get(media_type, ())):
        return None
    return Challenge(
        kind=ChallengeKind.IMAGE,
        media_type=media_type,
        data=data,
        alt="Scan this image with your banking app or photoTAN reader",
    )


def frames(hhduc: str) -> list[str]:
    """The flicker frames of an HHD/UC challenge, as python-fints encodes them: each frame is
    five bars (the clock first, then four data bits), ``"1"`` lit, ``"0"`` dark."""
    stream: list[str] = hhd.code_to_bitstream(hhduc)
    return stream


def svg(stream: list[str]) -> bytes:
    """The frames as an SVG that loops by itself (SMIL, no script).

    Every bar gets one ``<animate>`` whose discrete values are its colour in each frame, so the
    five bars change together, each frame showing for :data:`FRAME_SECONDS`.
    """
    duration = f"{len(stream) * FRAME_SECONDS:.2f}s"
    width = 2 * _MARGIN + 5 * _BAR_WIDTH + 4 * _GAP
    height = 2 * _MARGIN + _HEIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="{_DARK}"/>',
        # the two marks a reader is lined up with, above the first and the last bar
        f'<path d="M{_MARGIN + _BAR_WIDTH // 2 - 8} 4h16l-8 10z" fill="{_LIGHT}"/>',
        f'<path d="M{width - _MARGIN - _BAR_WIDTH // 2 - 8} 4h16l-8 10z" fill="{_LIGHT}"/>',
    ]
    for bar in range(5):
        values = ";".join(_LIGHT if frame[bar] == "1" else _DARK for frame in stream)
        x = _MARGIN + bar * (_BAR_WIDTH + _GAP)
        first = _LIGHT if stream[0][bar] == "1" else _DARK
        parts.append(
            f'<rect x="{x}" y="{_MARGIN}" width="{_BAR_WIDTH}" height="{_HEIGHT}" fill="{first}">'
            f'<animate attributeName="fill" dur="{duration}" repeatCount="indefinite" '
            f'calcMode="discrete" values="{values}"/></rect>'
        )
    parts.append("</svg>")
    return "".join(parts).encode("ascii")


def manual(hhduc: str) -> tuple[tuple[str, str], ...]:
    """What "chipTAN manuell" keys in: the start code, then each data element the code holds."""
    code = hhd.parse(hhduc)
    fields = [("Start code", str(code.startcode.data))]
    for number, element in enumerate((code.de1, code.de2, code.de3), start=1):
        if element.data:
            fields.append((f"Field {number}", str(element.data)))
    return tuple(fields)


def flicker(hhduc: str | None) -> Challenge | None:
    """The chipTAN flicker of an HHD/UC challenge, with its manual fallback; None when the
    data is no flicker code python-fints can read (the challenge text then stands alone)."""
    if not hhduc or not hhduc.isascii():
        return None
    try:
        stream = frames(hhduc)
        keyed = manual(hhduc)
    # python-fints' decoder reports a code it cannot read with whatever fails first
    except (ValueError, IndexError, TypeError, AttributeError, NameError):
        return None
    return Challenge(
        kind=ChallengeKind.FLICKER,
        media_type="image/svg+xml",
        data=svg(stream),
        alt="Flicker code: hold your chipTAN reader against it",
        manual=keyed,
    )
