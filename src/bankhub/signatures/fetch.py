"""Fetching and reading a key source: the document at a partner's URL that lists its public keys.

**Fetching** goes through the webhooks' SSRF guard (``webhooks.ssrf``, S39), as bank logos do:
https only (plain http and loopback or private addresses only where the operator allows them,
as for webhooks in development), every address the host resolves to checked and the request sent
to the checked address with the real name as SNI and ``Host``, each redirect checked the same way
(at most :data:`MAX_REDIRECTS`), the whole exchange within :data:`FETCH_SECONDS`, and at most
:data:`MAX_BODY_BYTES` of body read. ``If-None-Match`` carries the last good answer's ``ETag``.

**Reading** takes the two forms partners have at hand:

- OpenSSH ``authorized_keys`` lines, exactly what ``https://github.com/USER.keys`` serves: one
  key a line (``ssh-ed25519``, ``ecdsa-sha2-nistp256``, ``ssh-rsa``), an optional comment, blank
  lines and ``#`` comments ignored;
- a JWKS (RFC 7517 §5, ``{"keys": [...]}``), chosen by a JSON content type or by a body that
  starts with ``{``; a key's ``kid`` becomes its label when it is a valid one.

Each key is checked by :func:`bankhub.signatures.keys.parse`, the same check as an uploaded key.
An entry bankhub refuses (a weak RSA key, DSA, an unknown type, a private JWK, a line that is no
key) is skipped with its reason, never fatal for the others. The parsing of each key is the
``cryptography``/PyJWT one behind ``keys.parse``; what is ours is the splitting into entries.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from bankhub.errors import DomainError
from bankhub.signatures import keys
from bankhub.webhooks.guarded import Limits, Refused, guarded_get
from bankhub.webhooks.ssrf import Resolver, UnsafeUrl, resolve_target

#: the whole exchange with the key source, redirects included
FETCH_SECONDS = 10.0
#: the most of an answer that is read; a longer one fails the sync
MAX_BODY_BYTES = 64 * 1024
MAX_REDIRECTS = 3
#: the reasons kept for the entries skipped in one answer
MAX_SKIPPED = 20
ACCEPT = "application/jwk-set+json, application/json;q=0.9, text/plain;q=0.8"
#: the OpenSSH key types bankhub takes (others are skipped with their type named)
SSH_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa")
_LABEL = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")


class FetchFailed(Exception):
    """The source could not be read; the message says why (shown in the source's state)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A source's answer: 304 (unchanged since ``If-None-Match``) or 200 with its body."""

    status: int
    body: bytes
    etag: str | None
    content_type: str


@dataclass(frozen=True, slots=True)
class SourceKey:
    key: keys.ParsedKey
    label: str | None


@dataclass(slots=True)
class Document:
    """The keys of an answer, the entries skipped (with reasons), and whether the answer listed
    no entry at all (an empty body, or a JWKS with ``"keys": []``)."""

    keys: list[SourceKey] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    empty: bool = False

    def skip(self, reason: str) -> None:
        if len(self.skipped) < MAX_SKIPPED:
            self.skipped.append(reason[:300])
        elif len(self.skipped) == MAX_SKIPPED:
            self.skipped.append("… more entries skipped")


def redact(url: str) -> str:
    """``url`` without user information, for logs, audit entries and key sources' names (a
    source URL with a password is refused, but one may still be stored from before)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url[:290]
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


@dataclass
class KeyFetcher:
    """Fetches key sources over ``http`` (the hub's outbound client: TLS checked against
    ``BANKHUB_CA_BUNDLE`` or the system store, no ambient proxy)."""

    http: httpx.AsyncClient
    #: development: plain http, and loopback and private hosts (never in production)
    allow_private: bool = False
    allow_http: bool = False
    resolver: Resolver | None = None
    timeout: float = FETCH_SECONDS

    async def check(self, url: str) -> None:
        """Raise UnsafeUrl unless ``url`` may be a key source (resolved and checked now)."""
        async with asyncio.timeout(self.timeout):
            try:
                await resolve_target(
                    url,
                    allow_private=self.allow_private,
                    allow_http=self.allow_http,
                    resolver=self.resolver,
                )
            except OSError as exc:
                raise UnsafeUrl(f"its host could not be resolved ({exc})") from None

    async def fetch(self, url: str, etag: str | None) -> Answer:
        """The source's answer, or FetchFailed saying why."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._download(url, etag)
        except TimeoutError:
            raise FetchFailed(f"no whole answer within {self.timeout:g} s") from None
        except UnsafeUrl as exc:
            raise FetchFailed(f"refused: {exc}") from None
        except (httpx.HTTPError, OSError) as exc:
            raise FetchFailed(_describe(exc)) from None

    async def _download(self, url: str, etag: str | None) -> Answer:
        try:
            got = await guarded_get(
                self.http,
                url,
                Limits(ACCEPT, MAX_BODY_BYTES, MAX_REDIRECTS, self.timeout + 1),
                allow_private=self.allow_private,
                allow_http=self.allow_http,
                resolver=self.resolver,
                etag=etag,
            )
        except Refused as exc:
            raise FetchFailed(str(exc)) from None
        if got.status == 304:
            return Answer(304, b"", etag, "")
        return Answer(200, got.body, got.headers.get("etag"), got.headers.get("content-type", ""))


# --- reading -------------------------------------------------------------------------------------


def read(answer: Answer) -> Document:
    """The keys of a 200 answer; FetchFailed when the body is neither form at all."""
    try:
        text = answer.body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FetchFailed("the answer is not UTF-8 text") from None
    if "json" in answer.content_type.lower() or text.lstrip().startswith("{"):
        return _jwks(text)
    return _lines(text)


def _jwks(text: str) -> Document:
    try:
        document = json.loads(text)
    except ValueError:
        raise FetchFailed("the answer is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise FetchFailed('the answer is JSON but not a JWKS ({"keys": [...]})')
    found = Document(empty=not document["keys"])
    for n, jwk in enumerate(document["keys"], 1):
        if not isinstance(jwk, dict):
            found.skip(f"key {n}: not a JWK object")
            continue
        name = f"key {n}" + (f" ({str(jwk['kid'])[:60]})" if "kid" in jwk else "")
        if jwk.get("use", "sig") != "sig":
            found.skip(f"{name}: its use is {str(jwk['use'])[:20]}, not sig")
            continue
        try:
            parsed = keys.parse(json.dumps(jwk))
        except DomainError as exc:
            found.skip(f"{name}: {exc.message}")
            continue
        kid = jwk.get("kid")
        label = kid if isinstance(kid, str) and _LABEL.match(kid) else None
        found.keys.append(SourceKey(parsed, label))
    return found


def _lines(text: str) -> Document:
    found = Document()
    entries = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entries += 1
        kind, _, rest = line.partition(" ")
        if kind not in SSH_TYPES:
            shown = kind[:40] if kind.isascii() and kind.isprintable() else "?"
            found.skip(f"line {n}: key type {shown} is not accepted")
            continue
        blob = rest.strip().split(" ", 1)[0]
        try:
            parsed = keys.parse(f"{kind} {blob}")
        except DomainError as exc:
            found.skip(f"line {n}: {exc.message}")
            continue
        found.keys.append(SourceKey(parsed, None))
    found.empty = entries == 0
    return found
