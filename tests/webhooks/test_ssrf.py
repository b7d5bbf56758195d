"""The SSRF guard: syntax, literal addresses in every spelling, and resolved names."""

from __future__ import annotations

import ipaddress

import pytest

from bankhub.webhooks.ssrf import (
    CheckedTargets,
    Resolver,
    Target,
    UnsafeUrl,
    check_url_syntax,
    resolve_target,
    unsafe_reason,
)

PUBLIC = "93.184.216.34"
PUBLIC6 = "2606:2800:220:1:248:1893:25c8:1946"


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
    """A resolver answering from ``table``; literal hosts must never reach it."""

    async def resolve(host: str, port: int) -> list[str]:
        return table.get(host, [PUBLIC])

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.8.9.10/hook",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://172.31.255.255/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://0.0.0.0/",
        "https://100.64.0.1/",
        "https://224.0.0.1/",
        "https://255.255.255.255/",
        "https://[::1]/",
        "https://[::]/",
        "https://[fe80::1]/",
        "https://[fc00::1]/",
        "https://[fd12:3456::1]/",
        "https://[fec0::1]/",
        "https://[ff02::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://[::ffff:7f00:1]/",
        "https://[::127.0.0.1]/",
        "https://[64:ff9b::127.0.0.1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2002:7f00:1::1]/",
        "https://[2002:c0a8:101::1]/",
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "https://2130706433/",
        "https://0x7f000001/",
        "https://0x7f.1/",
        "https://0177.0.0.1/",
        "https://127.1/",
        "https://017700000001/",
        "https://3232235777/",
        "https://LOCALHOST.internal.example/",
    ],
)
async def test_unsafe_literal_addresses_are_rejected(url: str) -> None:
    # The fake resolver says "public" for every name: a literal must be judged on its own value.
    resolver = fake_resolver({"localhost.internal.example": ["127.0.0.1"]})
    with pytest.raises(UnsafeUrl):
        await resolve_target(url, allow_private=False, allow_http=False, resolver=resolver)


@pytest.mark.parametrize(
    "answers",
    [
        [PUBLIC, "10.0.0.7"],
        ["10.0.0.7", PUBLIC],
        [PUBLIC, PUBLIC6, "::1"],
        [PUBLIC6, "fe80::1%eth0"],
        [PUBLIC, "::ffff:192.168.0.1"],
        [],
    ],
)
async def test_name_with_any_unsafe_answer_is_rejected(answers: list[str]) -> None:
    resolver = fake_resolver({"hooks.example.com": answers})
    with pytest.raises(UnsafeUrl):
        await resolve_target(
            "https://hooks.example.com/in", allow_private=False, allow_http=False, resolver=resolver
        )


async def test_resolver_garbage_is_rejected() -> None:
    resolver = fake_resolver({"hooks.example.com": ["not-an-address"]})
    with pytest.raises(UnsafeUrl, match="not an address"):
        await resolve_target(
            "https://hooks.example.com/", allow_private=False, allow_http=False, resolver=resolver
        )


async def test_public_name_resolves_to_a_target() -> None:
    resolver = fake_resolver({"hooks.example.com": [PUBLIC, PUBLIC6]})
    target = await resolve_target(
        "https://Hooks.Example.com:8443/in/bankhub?tenant=7#frag",
        allow_private=False,
        allow_http=False,
        resolver=resolver,
    )
    assert target == Target(
        url="https://Hooks.Example.com:8443/in/bankhub?tenant=7#frag",
        scheme="https",
        host="hooks.example.com",
        port=8443,
        path_and_query="/in/bankhub?tenant=7",
        address=PUBLIC,
    )
    assert target.host_header == "hooks.example.com:8443"


@pytest.mark.parametrize(
    ("url", "address", "host_header"),
    [
        (f"https://{PUBLIC}", PUBLIC, PUBLIC),
        (f"https://[{PUBLIC6}]/x", PUBLIC6, f"[{PUBLIC6}]"),
        ("https://[::ffff:93.184.216.34]/", "::ffff:5db8:d822", "[::ffff:93.184.216.34]"),
        ("https://[64:ff9b::93.184.216.34]/", "64:ff9b::5db8:d822", "[64:ff9b::93.184.216.34]"),
        ("http://1572395042:8080/", PUBLIC, "1572395042:8080"),
    ],
)
async def test_public_literals_are_accepted(url: str, address: str, host_header: str) -> None:
    target = await resolve_target(url, allow_private=False, allow_http=True, resolver=None)
    assert target.address == address
    assert target.host_header == host_header


async def test_allow_private_lets_loopback_through() -> None:
    target = await resolve_target("http://127.0.0.1:8080/hook", allow_private=True, allow_http=True)
    assert (target.address, target.port, target.host_header) == (
        "127.0.0.1",
        8080,
        "127.0.0.1:8080",
    )
    with pytest.raises(UnsafeUrl):
        await resolve_target("http://127.0.0.1:8080/hook", allow_private=False, allow_http=True)


@pytest.mark.parametrize("url", ["http://0.0.0.0/", "http://224.0.0.1/", "http://[ff02::1]/"])
async def test_allow_private_still_refuses_non_unicast(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="cannot be a webhook receiver"):
        await resolve_target(url, allow_private=True, allow_http=True)


async def test_localhost_with_the_real_resolver() -> None:
    # getaddrinfo answers "localhost" from the hosts file: no network involved.
    target = await resolve_target("http://localhost:9/x", allow_private=True, allow_http=True)
    assert ipaddress.ip_address(target.address).is_loopback
    assert target.host_header == "localhost:9"
    with pytest.raises(UnsafeUrl, match="loopback"):
        await resolve_target("http://localhost:9/x", allow_private=False, allow_http=True)


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        ("ftp://example.com/", True, "scheme"),
        ("javascript:alert(1)", True, "scheme"),
        ("file:///etc/passwd", True, "scheme"),
        ("//example.com/hook", True, "scheme"),
        ("/hook", True, "scheme"),
        ("http://example.com/", False, "https"),
        ("https://user:pw@example.com/", False, "user information"),
        ("https://example.com@127.0.0.1/", False, "user information"),
        ("https://example.com\\@127.0.0.1/", False, "backslash"),
        ("https://example.com/a\r\nX-Evil: 1", False, "control"),
        ("https://example.com/a b", False, "whitespace"),
        ("https://example.com/\x00", False, "control"),
        ("https://exämple.com/", False, "ASCII"),
        ("https:///path", False, "no host"),
        ("https://:443/", False, "no host"),
        ("https://example.com:0/", False, "port"),
        ("https://example.com:99999/", False, "malformed"),
        ("https://[::1/", False, "malformed"),
        ("https://[fe80::1%25eth0]/", False, "zone"),
        ("https://example.com/" + "a" * 2000, False, "longer than 2000"),
    ],
)
def test_syntax_errors_are_rejected(url: str, allow_http: bool, message: str) -> None:
    with pytest.raises(UnsafeUrl, match=message):
        check_url_syntax(url, allow_http=allow_http)


def test_good_syntax_passes() -> None:
    check_url_syntax("https://hooks.example.com/in?x=1", allow_http=False)
    check_url_syntax("HTTP://127.0.0.1:8080/", allow_http=True)


@pytest.mark.parametrize(
    ("address", "safe"),
    [
        (PUBLIC, True),
        (PUBLIC6, True),
        ("2002:5db8:d822::1", True),
        ("2002:a00:1::1", False),
        ("64:ff9b:1::1", False),
        ("100.127.255.255", False),
        ("198.18.0.1", False),
        ("192.0.2.1", False),
        ("2001:db8::1", False),
    ],
)
def test_unsafe_reason(address: str, safe: bool) -> None:
    assert (unsafe_reason(ipaddress.ip_address(address)) is None) is safe


class CountingResolver:
    """Answers from ``answers`` (changeable) and counts the questions."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return list(self.answers)


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_checked_target_is_kept_for_a_while_then_checked_again() -> None:
    resolver, clock = CountingResolver([PUBLIC]), Ticks()
    targets = CheckedTargets(seconds=30, resolver=resolver, clock=clock)
    url = "https://hooks.example.com/in"
    first = await targets.target(url, allow_private=False, allow_http=False)
    assert (first.address, resolver.asked) == (PUBLIC, 1)
    clock.now += 29
    assert await targets.target(url, allow_private=False, allow_http=False) is first
    assert resolver.asked == 1
    # past its time the name is resolved and checked anew: a rebinding meets the guard then
    resolver.answers = ["10.0.0.7"]
    clock.now += 2
    with pytest.raises(UnsafeUrl, match="private"):
        await targets.target(url, allow_private=False, allow_http=False)
    # a refusal is not kept: the next attempt asks again
    with pytest.raises(UnsafeUrl):
        await targets.target(url, allow_private=False, allow_http=False)
    assert resolver.asked == 3


async def test_a_forgotten_or_differently_allowed_target_is_resolved_again() -> None:
    resolver = CountingResolver(["127.0.0.1"])
    targets = CheckedTargets(resolver=resolver, clock=Ticks())
    url = "http://receiver.test:8080/h"
    dev = await targets.target(url, allow_private=True, allow_http=True)
    assert dev.address == "127.0.0.1"
    # what the development allowances let through is never served to a production check
    with pytest.raises(UnsafeUrl):
        await targets.target(url, allow_private=False, allow_http=True)
    assert resolver.asked == 2
    await targets.target(url, allow_private=True, allow_http=True)
    assert resolver.asked == 2
    targets.forget(url)
    await targets.target(url, allow_private=True, allow_http=True)
    assert resolver.asked == 3


async def test_the_least_recently_used_target_goes_first() -> None:
    resolver = CountingResolver([PUBLIC])
    targets = CheckedTargets(size=2, resolver=resolver, clock=Ticks())
    a, b, c = (f"https://{name}.example.com/" for name in "abc")
    for url in (a, b, a, c):  # a used again after b: b is the oldest when c comes
        await targets.target(url, allow_private=False, allow_http=False)
    assert resolver.asked == 3
    await targets.target(a, allow_private=False, allow_http=False)
    assert resolver.asked == 3
    await targets.target(b, allow_private=False, allow_http=False)
    assert resolver.asked == 4
