"""App Templates: the connect page's branding per app (S27, S29).

Values are checked before they are stored (a refused form changes nothing), texts are shown
escaped, colours reach the connect page only through a hashed stylesheet of our own origin (no
inline style, the CSP unchanged), and a logo is a PNG or JPEG recognised from its bytes and
served with its sniffed type, ``nosniff`` and a sandboxing CSP.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.connect.pages import CSP
from bankhub.dashboard.roles import Role
from bankhub.db import tenancy
from bankhub.partners import branding
from bankhub.partners.models import AppTemplate
from tests.api.connect_client import ConnectDriver, create_customer, create_token
from tests.conftest import BASE_URL, Harness
from tests.dashboard.images import jpeg_header, png
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
CSS_LINK = re.compile(r'<link rel="stylesheet" href="(/v2/connect/brand/[^"]+\.css)">')
LOGO = re.compile(r'<img class="app-logo"[^>]* src="(/v2/connect/brand/[^"]+)"')
FIELDS = {
    "display_name": "",
    "welcome_text": "",
    "footer_text": "",
    "color_primary": "",
    "color_secondary": "",
}


# --- the checks, without a server ----------------------------------------------------------------


def test_a_logo_is_png_or_jpeg_recognised_from_its_bytes() -> None:
    logo = branding.check_logo(png(64, 32))
    assert (logo.media_type, logo.width, logo.height) == ("image/png", 64, 32)
    jpeg = branding.check_logo(jpeg_header(80, 40))
    assert (jpeg.media_type, jpeg.width, jpeg.height) == ("image/jpeg", 80, 40)
    good = png()
    refused = {
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "html": b"<!doctype html><script>alert(1)</script>",
        "gif": b"GIF89a" + b"\x00" * 20,
        "empty": b"",
        "too big": good + b"\x00" * branding.MAX_LOGO_BYTES,
        "too wide": png(branding.MAX_LOGO_SIDE + 1, 20),
        "too small": png(8, 8),
        "html after the end": good + b"<script>alert(1)</script>",
        "damaged": good[:20] + bytes([good[20] ^ 1]) + good[21:],
        "cut short": good[:-12],
        "jpeg cut short": jpeg_header()[:-2],
    }
    for name, data in refused.items():
        try:
            branding.check_logo(data)
        except branding.BrandingError:
            continue
        pytest.fail(f"accepted: {name}")


def test_colours_and_texts_are_checked() -> None:
    assert branding.clean_colour(" #1F5FBF ", label="c") == "#1f5fbf"
    assert branding.clean_colour("", label="c") is None
    for bad in ("red", "#12345", "#1234567", "#12345g", "#fff;}body{x:y", "1f5fbf", "#fff"):
        with pytest.raises(branding.BrandingError):
            branding.clean_colour(bad, label="c")
    assert branding.clean_text("  a\r\nb ", limit=10, label="t", multiline=True) == "a\nb"
    with pytest.raises(branding.BrandingError):
        branding.clean_text("a\nb", limit=10, label="t", multiline=False)
    with pytest.raises(branding.BrandingError):
        branding.clean_text("bell\x07", limit=10, label="t", multiline=True)
    with pytest.raises(branding.BrandingError):
        branding.clean_text("x" * 11, limit=10, label="t", multiline=True)
    css = branding.stylesheet("#ffdd00", "#102030")
    assert "--accent: #ffdd00;" in css
    assert "--accent-ink: #17202a;" in css  # dark text on yellow
    assert "--brand-bar-ink: #ffffff;" in css  # white text on navy
    assert branding.stylesheet("#ffdd00;}", None) == ".branded {\n}\n"  # never unchecked


# --- through the dashboard and the connect page -------------------------------------------------


async def _member(h: Harness, visitors: Visitors, role: Role) -> Visitor:
    v = visitors()
    await v.sign_in(await make_member(h, role))
    return v


def _path(h: Harness) -> str:
    return f"/dashboard/apps/{h.creds['client_id']}/template"


async def _save(
    v: Visitor,
    h: Harness,
    fields: dict[str, str],
    logo: bytes | None = None,
    filename: str = "logo.png",
) -> httpx.Response:
    """The form as a browser sends it (multipart, an empty file part when none is chosen)."""
    await v.get(_path(h))
    files = {"logo": (filename, logo or b"", "image/png" if logo else "application/octet-stream")}
    return await v.client.post(
        _path(h),
        data={"csrf": v.csrf, **FIELDS, **fields},
        files=files,
        headers={"origin": BASE_URL},
    )


async def _connect_page(h: Harness) -> tuple[str, httpx.Response]:
    driver = ConnectDriver(h)
    customer = await create_customer(h, f"brand-{len(h.creds)}")
    url = await create_token(h, customer)
    await driver.open(url)
    response = await h.client.get("/v2/connect/session")
    return driver.page, response


async def _template(h: Harness) -> AppTemplate | None:
    with tenancy.everything():
        async with h.hub.db.transaction() as db:
            rows = list((await db.execute(select(AppTemplate))).scalars())
    return rows[0] if rows else None


async def test_branding_is_saved_previewed_and_shown_on_the_connect_page(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    v = await _member(h, visitors, Role.DEVELOPER)
    logo = png(120, 40)
    saved = await _save(
        v,
        h,
        {
            "display_name": "<b>Acme</b> Budget",
            "welcome_text": "Hello!\n<script>alert(1)</script>",
            "footer_text": "Acme Ltd · help@acme.example",
            "color_primary": "#C0392B",
            "color_secondary": "#102030",
        },
        logo,
    )
    assert saved.status_code == 303, saved.text
    preview = await v.get(saved.headers["location"])
    assert "The connect page&#39;s branding was saved." in preview.text
    assert "&lt;b&gt;Acme&lt;/b&gt; Budget" in preview.text
    preview_css = CSS_LINK.search(preview.text)
    assert preview_css is not None

    page, response = await _connect_page(h)
    assert response.headers["content-security-policy"] == CSP
    assert "&lt;b&gt;Acme&lt;/b&gt; Budget" in page
    assert "<b>Acme</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Acme Ltd · help@acme.example" in page
    assert " style=" not in page
    assert "<style" not in page
    assert '<body class="branded">' in page
    css_url = CSS_LINK.search(page)
    assert css_url is not None
    assert css_url.group(1) == preview_css.group(1)

    css = await h.client.get(css_url.group(1))
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["x-content-type-options"] == "nosniff"
    assert "--accent: #c0392b;" in css.text
    assert "--brand-bar: #102030;" in css.text
    assert css.headers["cache-control"] == "no-store"  # S24: nothing under /v2 is cached

    logo_url = LOGO.search(page)
    assert logo_url is not None
    image = await h.client.get(logo_url.group(1))
    assert image.status_code == 200
    assert image.content == logo
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in image.headers["content-security-policy"]

    # a change of colour is a new address; the old one is gone
    assert (await _save(v, h, {"color_primary": "#00aa55"})).status_code == 303
    assert (await h.client.get(css_url.group(1))).status_code == 404
    assert (await h.client.get(logo_url.group(1))).status_code == 200  # the logo was kept
    wrong = f"/v2/connect/brand/{h.creds['client_id']}/logo-{'0' * 32}"
    assert (await h.client.get(wrong)).status_code == 404
    assert (await h.client.get("/v2/connect/brand/nobody/x.css")).status_code == 404

    async with h.hub.db.transaction() as db:
        entries = list(
            (
                await db.execute(
                    select(AuditEntry).where(AuditEntry.action == "app.template_changed")
                )
            ).scalars()
        )
    assert [e.actor for e in entries] == ["member:developer@example.com"] * 2
    assert entries[0].detail["changed"]["logo"]["type"] == "image/png"


async def test_bad_values_are_refused_and_change_nothing(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    v = await _member(h, visitors, Role.ADMIN)
    ok = await _save(v, h, {"display_name": "Acme", "color_primary": "#112233"}, png())
    assert ok.status_code == 303
    before = await _template(h)
    assert before is not None
    for fields, logo, message in (
        ({"color_primary": "red;}"}, None, "colour written #rrggbb"),
        ({"display_name": "x" * 61}, None, "at most 60 characters"),
        ({"footer_text": "a\x00b"}, None, "printable"),
        ({}, b"<svg onload=alert(1)></svg>", "PNG or JPEG"),
        ({}, png(2000, 10), "pixels"),
    ):
        refused = await _save(v, h, {"display_name": "Changed", **fields}, logo, "logo.svg")
        assert refused.status_code == 400, fields
        assert message in refused.text.replace("&#39;", "'"), refused.text[-2000:]
    after = await _template(h)
    assert after is not None
    assert (after.display_name, after.color_primary, after.logo_hash) == (
        before.display_name,
        before.color_primary,
        before.logo_hash,
    )
    removed = await _save(v, h, {"display_name": "Acme", "remove_logo": "1"})
    assert removed.status_code == 303
    gone = await _template(h)
    assert gone is not None
    assert gone.logo_hash is None
    page, _ = await _connect_page(h)
    assert LOGO.search(page) is None
    assert "Acme" in page


async def test_a_viewer_sees_the_preview_but_cannot_change_it(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    v = await _member(h, visitors, Role.VIEWER)
    page = await v.get(_path(h))
    assert page.status_code == 200
    assert "Save branding" not in page.text
    refused = await _save(v, h, {"display_name": "Forged"})
    assert refused.status_code == 403
    assert await _template(h) is None


async def test_a_connect_page_without_a_template_is_unbranded(harness: Harness) -> None:
    page, response = await _connect_page(harness)
    assert response.status_code == 200
    assert "<body>" in page
    assert "/v2/connect/brand/" not in page


async def test_the_privacy_link_and_who_handles_the_data_are_set_per_app(
    harness: Harness, visitors: Visitors
) -> None:
    """The consent step's "who handles your data" and privacy link: the operator's defaults
    (translated), else the app's own, saved on the branding page and checked first."""
    h = harness
    h.hub.settings.privacy_url = "https://operator.example/privacy"

    async def consent(name: str) -> str:
        driver = ConnectDriver(h)
        await driver.open(await create_token(h, await create_customer(h, name)))
        return driver.page

    page = await consent("privacy-default")
    assert 'id="privacy" href="https://operator.example/privacy"' in page
    assert "bankhub runs this secure connection and passes your bank data only to Test app" in page

    v = await _member(h, visitors, Role.ADMIN)
    for fields, message in (
        ({"privacy_url": "http://app.example/privacy"}, "https:// address"),
        ({"privacy_url": "javascript:alert(1)"}, "https:// address"),
        ({"privacy_url": "https://app.example/a b"}, "https:// address"),
        ({"data_notice": "x" * 301}, "at most 300 characters"),
        ({"data_notice": "two\nlines"}, "printable"),
    ):
        refused = await _save(v, h, fields)
        assert refused.status_code == 400, fields
        assert message in refused.text.replace("&#39;", "'"), refused.text[-2000:]
    assert await _template(h) is None  # nothing of the refused forms was kept

    saved = await _save(
        v,
        h,
        {
            "privacy_url": "https://app.example/privacy?lang=en",
            "data_notice": "Acme Ltd handles your data <under> its notice.",
        },
    )
    assert saved.status_code == 303
    row = await _template(h)
    assert row is not None
    assert row.privacy_url == "https://app.example/privacy?lang=en"
    page = await consent("privacy-own")
    assert 'href="https://app.example/privacy?lang=en"' in page
    assert "Acme Ltd handles your data &lt;under&gt; its notice." in page
    assert "runs this secure connection" not in page
