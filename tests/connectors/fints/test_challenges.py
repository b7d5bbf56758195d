"""TAN challenges the dummy bank cannot send, as a bank sends them (an HITAN segment on the
wire), decoded by python-fints itself (its parser and ``NeedTANResponse``), then shown by the
connector: a photoTAN image and an HHD 1.4 chipTAN flicker code with its manual fallback."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import segno
from fints.client import NeedTANResponse
from fints.hhd import flicker as hhd
from fints.parser import FinTS3Parser

from bankhub.connectors.base import ChallengeKind
from bankhub.connectors.fints import TanChallenge
from bankhub.connectors.fints.challenge import FRAME_SECONDS
from bankhub.connectors.fints.connector import _interaction

SVG = "{http://www.w3.org/2000/svg}"
#: HHD 1.4: LC 030, start code 1120492 with one control byte (01), an account number and an
#: amount as data elements (the layout of the DK's HHD-UC specification)
HHD14 = "030870111204921012345678900515,00"


def _hitan6(text: str, hhduc: bytes) -> NeedTANResponse:
    """An HITAN (version 6) segment as the bank's answer carries it, through python-fints."""
    raw = b"HITAN:5:6:4+4++4711abcd+" + text.encode() + b"+@%d@" % len(hhduc) + hhduc + b"'"
    segment = FinTS3Parser().parse_message(raw).find_segment_first("HITAN")
    return NeedTANResponse(None, segment)


def _png() -> bytes:
    out = io.BytesIO()
    segno.make("photoTAN:" + "4711-0815-" * 30, error="h").save(out, kind="png", scale=8)
    png = out.getvalue()
    assert len(png) > 256  # python-fints reads a shorter HHD_UC field as text
    return png


def _matrix(media_type: bytes, data: bytes) -> bytes:
    """The photoTAN container of HITAN's HHD_UC field: type and content, each length-prefixed."""
    return len(media_type).to_bytes(2, "big") + media_type + len(data).to_bytes(2, "big") + data


def _frames(svg: bytes) -> list[str]:
    """The frames an SVG flicker plays, read back from its five bars' animations."""
    root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted XML
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}animate") is not None]
    assert len(bars) == 5
    columns = []
    for bar in bars:
        animate = bar.find(f"{SVG}animate")
        assert animate is not None
        assert animate.get("calcMode") == "discrete"
        assert animate.get("repeatCount") == "indefinite"
        values = animate.get("values", "").split(";")
        assert animate.get("dur") == f"{len(values) * FRAME_SECONDS:.2f}s"
        assert bar.get("fill") == values[0]
        columns.append(["1" if v == "#fff" else "0" for v in values])
    return ["".join(bits) for bits in zip(*columns, strict=True)]


def test_a_phototan_image_is_shown_as_the_bank_sent_it() -> None:
    png = _png()
    response = _hitan6("Bitte scannen Sie die Grafik", _matrix(b"image/png", png))
    assert response.challenge_matrix == ("image/png", png)  # python-fints' decoding

    asked = _interaction(response)
    assert isinstance(asked, TanChallenge)
    assert asked.prompt == "Bitte scannen Sie die Grafik"
    shown = asked.challenge
    assert shown is not None
    assert (shown.kind, shown.media_type, shown.data) == (ChallengeKind.IMAGE, "image/png", png)
    assert shown.data_url().startswith("data:image/png;base64,iVBORw0KGgo")
    assert shown.manual == ()
    assert png not in repr(shown).encode()  # the image stays out of logs and reprs


@pytest.mark.parametrize(
    ("media_type", "data"),
    [
        (b"image/png", b'<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>' * 8),
        (b"text/html", b"<html>" + b"x" * 300),
        (b"image/svg+xml", b"<svg/>" * 60),
    ],
)
def test_an_image_that_is_not_what_it_says_is_not_shown(media_type: bytes, data: bytes) -> None:
    response = _hitan6("Bitte scannen", _matrix(media_type, data))
    assert response.challenge_matrix is not None
    asked = _interaction(response)
    assert isinstance(asked, TanChallenge)
    assert asked.challenge is None
    assert asked.prompt == "Bitte scannen"


def test_an_hhd14_flicker_code_plays_python_fints_own_encoding() -> None:
    response = _hitan6("Startcode eingeben", HHD14.encode())
    assert response.challenge_hhduc == HHD14

    asked = _interaction(response)
    assert isinstance(asked, TanChallenge)
    shown = asked.challenge
    assert shown is not None
    assert (shown.kind, shown.media_type) == (ChallengeKind.FLICKER, "image/svg+xml")
    assert _frames(shown.data) == hhd.code_to_bitstream(HHD14)
    # the manual fallback is python-fints' reading of the same code
    code = hhd.parse(HHD14)
    assert code.version == hhd.HHD_VERSION_14
    assert shown.manual == (
        ("Start code", code.startcode.data),
        ("Field 1", code.de1.data),
        ("Field 2", code.de2.data),
    )
    assert shown.manual == (
        ("Start code", "1120492"),
        ("Field 1", "1234567890"),
        ("Field 2", "15,00"),
    )


def test_an_hhd13_code_in_the_challenge_text_flickers_too() -> None:
    text = "CHLGUC  00312908881344731012345678900515,00CHLGTEXT0034Geben Sie den Startcode ein"
    response = _hitan6(text, b"")
    asked = _interaction(response)
    assert isinstance(asked, TanChallenge)
    assert asked.prompt == "Geben Sie den Startcode ein"
    shown = asked.challenge
    assert shown is not None
    assert _frames(shown.data) == hhd.code_to_bitstream("2908881344731012345678900515,00")
    assert shown.manual[0] == ("Start code", "88134473")


def test_data_that_is_no_flicker_code_leaves_the_text_alone() -> None:
    asked = _interaction(_hitan6("Bitte TAN eingeben", b"not a flicker code"))
    assert isinstance(asked, TanChallenge)
    assert asked.challenge is None
    assert asked.prompt == "Bitte TAN eingeben"
