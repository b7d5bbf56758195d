"""SSRF guard for partner webhook URLs (S39).

A URL is checked for syntax, its host is resolved once, every resolved address is checked, and the
sender then connects to the checked address itself, so a second DNS answer cannot redirect it.

The delivery worker keeps the targets it checked for a short while (:class:`CheckedTargets`), so
a busy receiver's name is not resolved again for every delivery; what is kept is the checked
address, so keeping it weakens nothing: a name that later resolves elsewhere is met by the next
check, at the latest when the kept target expires.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2000
DEFAULT_PORTS = {"http": 80, "https": 443}

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """The URL may not be used as a webhook target; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked webhook target: where to connect, and what name to present."""

    url: str
    scheme: str
    host: str
    port: int
    path_and_query: str
    address: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header for the original URL: host, and port when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def _split(url: str, *, allow_http: bool) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"URL is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii():
        raise UnsafeUrl("URL must be ASCII (use punycode and percent-encoding)")
    # ASCII by now: the only whitespace isprintable() lets through is the space
    if " " in url or not url.isprintable():
        raise UnsafeUrl("URL contains whitespace or control characters")
    if "\\" in url:
        raise UnsafeUrl("URL contains a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"URL is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrl("URL scheme must be https" + (" or http" if allow_http else ""))
    if scheme == "http" and not allow_http:
        raise UnsafeUrl("URL scheme must be https")
    if "@" in parts.netloc:
        raise UnsafeUrl("URL must not contain user information")
    if not parts.hostname:
        raise UnsafeUrl("URL has no host")
    if "%" in parts.hostname:
        raise UnsafeUrl("URL host must not contain '%' (zone ids and encoded names are refused)")
    if port == 0:
        raise UnsafeUrl("URL port must not be 0")
    return parts


def check_url_syntax(url: str, *, allow_http: bool) -> None:
    """Raise UnsafeUrl unless ``url`` is an absolute http(s) URL fit to be a webhook target.

    Requires a host, no user information, no whitespace or control characters, at most
    2000 characters, and the https scheme unless ``allow_http``.
    """
    _split(url, allow_http=allow_http)


_UNSAFE_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_UNSAFE_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "64:ff9b:1::/48",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_COMPAT = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def unsafe_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None if it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        # Mapped and NAT64 addresses are reached as the IPv4 address they carry: it decides.
        if ip.ipv4_mapped is not None or ip in _NAT64:
            v4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            reason = unsafe_reason(v4)
            return None if reason is None else f"embeds {v4}, which is {reason}"
        embedded: list[ipaddress.IPv4Address] = list(ip.teredo or ())
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip in _COMPAT and int(ip) > 1:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for v4 in embedded:
            reason = unsafe_reason(v4)
            if reason is not None:
                return f"embeds {v4}, which is {reason}"
        if ip.is_site_local:
            return "site-local"
    for flag in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{flag}"):
            return flag.replace("_", "-")
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        _UNSAFE_V4 if isinstance(ip, ipaddress.IPv4Address) else _UNSAFE_V6
    )
    if any(ip in net for net in networks) or not ip.is_global:
        return "not globally routable"
    return None


def _never_reachable(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    broadcast = isinstance(ip, ipaddress.IPv4Address) and int(ip) == 0xFFFFFFFF
    return ip.is_unspecified or ip.is_multicast or broadcast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # inet_aton accepts the legacy forms (2130706433, 0x7f.1, 0177.0.0.1) that the OS resolver
        # also accepts; normalizing here means no resolver can hand them back unchecked.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def resolve_target(
    url: str,
    *,
    allow_private: bool,
    allow_http: bool,
    resolver: Resolver | None = None,
) -> Target:
    """Check ``url``, resolve its host and return the address to connect to.

    Raises UnsafeUrl for a bad URL, a name that resolves to nothing, or if ANY resolved address
    is private, loopback, link-local, multicast, reserved, shared, site-local, or an IPv6 form
    embedding such an IPv4 address. ``allow_private`` (dev mode) lets non-public unicast
    addresses through. Resolution errors (``OSError``, e.g. ``socket.gaierror``) propagate:
    they are transient, not a verdict on the URL. ``resolver(host, port)`` returns address
    strings; the default uses the event loop's ``getaddrinfo``.
    """
    parts = _split(url, allow_http=allow_http)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[scheme]

    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        answers = await (resolver or _getaddrinfo)(host, port)
        try:
            # A scope id (fe80::1%eth0) is dropped: such addresses are link-local anyway.
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
        except ValueError as exc:
            raise UnsafeUrl(f"{host} resolved to something that is not an address") from exc
    if not addresses:
        raise UnsafeUrl(f"{host} resolved to no address")

    for ip in addresses:
        if _never_reachable(ip):
            raise UnsafeUrl(f"{host} resolves to {ip}, which cannot be a webhook receiver")
        reason = None if allow_private else unsafe_reason(ip)
        if reason is not None:
            raise UnsafeUrl(f"{host} resolves to {ip}, which is {reason}")

    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        path_and_query=path_and_query,
        address=addresses[0].compressed,
    )


#: how long a checked target is used again before its host is resolved and checked anew
TARGET_SECONDS = 30.0
#: how many checked targets one process keeps (the least recently used go first)
TARGETS_KEPT = 4096


class CheckedTargets:
    """Targets that passed :func:`resolve_target`, kept per process for ``seconds``.

    A worker delivering hundreds of events a second to one receiver otherwise asks the
    resolver (a thread of the loop's pool, and the network) the same question for every one.
    A target is kept by its URL and the guard's two allowances; a refusal (``UnsafeUrl``) or
    a resolver's error is not kept. The caller :meth:`forget` s a URL whose address did not
    answer, so a receiver that moved is found again at the next attempt, not after the
    target expires.
    """

    def __init__(
        self,
        *,
        seconds: float = TARGET_SECONDS,
        size: int = TARGETS_KEPT,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.size = size
        self.resolver = resolver
        self._clock = clock
        self._kept: OrderedDict[tuple[str, bool, bool], tuple[float, Target]] = OrderedDict()

    async def target(self, url: str, *, allow_private: bool, allow_http: bool) -> Target:
        key = (url, allow_private, allow_http)
        now = self._clock()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            self._kept.move_to_end(key)
            return kept[1]
        target = await resolve_target(
            url, allow_private=allow_private, allow_http=allow_http, resolver=self.resolver
        )
        self._kept[key] = (self._clock() + self.seconds, target)
        self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return target

    def forget(self, url: str) -> None:
        """Resolve ``url``'s host again next time (its address did not answer)."""
        for key in [key for key in self._kept if key[0] == url]:
            del self._kept[key]
