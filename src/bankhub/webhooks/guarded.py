"""One GET of a URL a partner or a registry names, through the SSRF guard (``webhooks.ssrf``, S39).

Bank logos (``banks.logos``) and signature key sources (``signatures.fetch``) fetch documents
from hosts bankhub does not control. Both need the same exchange, so it is written once here:
the URL is checked and its host resolved by :func:`resolve_target`, the request goes to the
checked address with the real name as SNI and ``Host``, each redirect is checked the same way
(at most ``max_redirects``), the body is read raw (no ``Content-Encoding``, so a compressed
bomb cannot pass the cap) and stops at ``max_bytes``. The caller bounds the whole exchange in
time and maps the two failures (:class:`UnsafeUrl`, :class:`Refused`) to its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from bankhub.webhooks.ssrf import Resolver, resolve_target

REDIRECTS = (301, 302, 303, 307, 308)


class Refused(Exception):
    """The answer is not one to use; the message says why (status, size, redirects)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A 200 with its body, or a 304 (unchanged since ``If-None-Match``) with none."""

    status: int
    body: bytes
    headers: httpx.Headers


@dataclass(frozen=True, slots=True)
class Limits:
    accept: str
    max_bytes: int
    max_redirects: int
    #: the per-request timeout; the caller's deadline around the whole exchange ends it first
    timeout: float


async def guarded_get(
    http: httpx.AsyncClient,
    url: str,
    limits: Limits,
    *,
    allow_private: bool,
    allow_http: bool,
    resolver: Resolver | None = None,
    etag: str | None = None,
) -> Fetched:
    """GET ``url``; raises ``UnsafeUrl`` for a URL (or a redirect) the guard refuses,
    :class:`Refused` for an answer bankhub does not use, and httpx's or the OS's errors as
    they come."""
    for _hop in range(limits.max_redirects + 1):
        target = await resolve_target(
            url, allow_private=allow_private, allow_http=allow_http, resolver=resolver
        )
        headers = {
            "Host": target.host_header,
            "Accept": limits.accept,
            # raw bytes are counted against the cap; a compressed body could be a bomb
            "Accept-Encoding": "identity",
            # an address-keyed pool must not reuse a TLS session verified for this name
            "Connection": "close",
        }
        if etag:
            headers["If-None-Match"] = etag
        request = http.build_request(
            "GET",
            httpx.URL(
                scheme=target.scheme,
                host=target.address,
                port=target.port,
                raw_path=target.path_and_query.encode("ascii"),
            ),
            headers=headers,
            timeout=limits.timeout,
            extensions={"sni_hostname": target.host},
        )
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            status = response.status_code
            if status in REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise Refused(f"status {status} without a Location")
                url = urljoin(url, location)
                continue
            if status == 304 and etag:
                return Fetched(304, b"", response.headers)
            if status != 200:
                raise Refused(f"status {status}")
            return Fetched(200, await _body(response, limits.max_bytes), response.headers)
        finally:
            await response.aclose()
    raise Refused(f"more than {limits.max_redirects} redirects")


async def _body(response: httpx.Response, cap: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise Refused(
            f"the answer announces {int(declared)} bytes, more than the "
            f"{cap // 1024} KiB bankhub reads"
        )
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) > cap:
            raise Refused(f"the body goes on past the {cap // 1024} KiB bankhub reads")
    return bytes(data)
