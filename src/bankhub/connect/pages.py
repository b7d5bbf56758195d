"""What every hosted page shares: security headers and the error page."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.response import Template

from bankhub.api.errors import ApiError, ErrorCode

PAGE_PREFIXES = ("/v2/connect/", "/sandbox-bank/")

#: No inline script or style anywhere: the pages work without JavaScript at all.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def is_page_path(path: str) -> bool:
    return path.startswith(PAGE_PREFIXES)


def page_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Opener-Policy": "same-origin",
        **(extra or {}),
    }


def error_page(
    request: Request[Any, Any, Any], error: ApiError, headers: dict[str, str]
) -> Response[Any]:
    friendly = {
        ErrorCode.TOKEN_EXPIRE: "This link has expired or was already used. "
        "Go back to the app and start again.",
        ErrorCode.SERVER_MAINTENANCE: "We are doing some maintenance. Please try again shortly.",
    }
    return Template(
        template_name="error.html",
        context={
            "code": str(error.code),
            "message": friendly.get(error.code, error.message),
            "return_url": None,
        },
        status_code=error.status,
        headers=page_headers(headers),
    )
