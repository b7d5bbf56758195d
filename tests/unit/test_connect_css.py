"""The connect page's form fields can be seen: each field's border has at least 3:1 contrast
against the card it sits on (WCAG 2.2, 1.4.11 Non-text Contrast), read from the stylesheet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bankhub.connect

CSS = (Path(bankhub.connect.__file__).parent / "static" / "connect.css").read_text("utf-8")
#: the rules that draw a field's edge: text and password inputs, files, selects, radio options
FIELD_SELECTORS = ("input[type=text]", "select", ".option")


def _luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _variables() -> dict[str, str]:
    root = re.search(r":root\s*\{([^}]*)\}", CSS)
    assert root
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", root.group(1)))


def _rule(selector: str) -> str:
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", CSS):
        if selector in [s.strip() for s in selectors.split(",")]:
            return str(body)
    raise AssertionError(f"no rule for {selector}")


def _colour(value: str) -> str:
    variables = _variables()
    named = re.search(r"var\(--([\w-]+)\)", value)
    if named:
        return variables[named.group(1)]
    literal = re.search(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b", value)
    assert literal, value
    digits = literal.group(1)
    return "#" + (digits if len(digits) == 6 else "".join(d * 2 for d in digits))


def test_the_contrast_formula_is_wcags() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("selector", FIELD_SELECTORS)
def test_a_field_border_has_3_to_1_against_the_card(selector: str) -> None:
    body = _rule(selector)
    border = re.search(r"border:\s*([^;]+);", body)
    assert border, f"{selector} draws no border"
    card = _colour(_rule(".card").split("background:")[1])
    ratio = contrast(_colour(border.group(1)), card)
    assert ratio >= 3.0, f"{selector}: border contrast {ratio:.2f}:1 < 3:1"


def test_a_field_in_error_is_marked_by_more_than_colour() -> None:
    body = _rule("input[aria-invalid=true]")
    assert "2px" in body  # thicker, not only red
    assert contrast(_colour(body), "#ffffff") >= 3.0
