"""One webhook delivery attempt over HTTP, and the retry schedule (S38, S39).

The outbox and its transaction belong to the caller; this module only sends one attempt and
classifies the answer, and never raises for a network problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, ParamSpec

import httpx

from bankhub.observability import metrics
from bankhub.webhooks.ssrf import CheckedTargets, Resolver, Target, UnsafeUrl, resolve_target
from bankhub.webhooks.transport import KeyedTransport

P = ParamSpec("P")
log = logging.getLogger("bankhub.webhooks")

EXCERPT_BYTES = 1024
#: the most of an answer's body that is read (and thrown away past the excerpt); an answer
#: with a longer body fails the attempt, as one that breaks off or does not end in time does
MAX_ANSWER_BODY = 1024 * 1024
MAX_RETRY_AFTER = 86_400.0
JITTER = 0.2

# Delay after failed attempt n is RETRY_SCHEDULE[n - 1]: about 3 days in total.
RETRY_SCHEDULE: tuple[float, ...] = (
    5,
    60,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    20 * 3600,
)

Outcome = Literal["delivered", "retry", "gone", "rejected"]


@dataclass(frozen=True)
class AttemptResult:
    """What one delivery attempt came to.

    ``outcome``: ``delivered`` (2xx), ``gone`` (410: disable the endpoint), ``rejected`` (the
    SSRF guard refused the URL: do not retry), or ``retry``. ``retry_after`` is the receiver's
    ``Retry-After`` in seconds (429/503 only), ``error`` says why a non-delivered attempt failed.
    """

    outcome: Outcome
    status_code: int | None
    retry_after: float | None
    error: str | None
    duration_ms: int
    response_excerpt: str


def parse_retry_after(value: str, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), capped at a day.

    Returns None for a value that is neither; a date in the past gives 0.
    """
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            # RFC 5322 "-0000" dates come back naive; HTTP dates are always GMT.
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def next_delay(attempt: int, *, retry_after: float | None, rng: random.Random) -> float | None:
    """Seconds to wait after failed attempt ``attempt`` (1-based), or None when retries are over.

    The scheduled delay with ±20 % jitter, and never less than ``retry_after`` (capped at a day).
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if attempt > len(RETRY_SCHEDULE):
        return None
    delay = RETRY_SCHEDULE[attempt - 1] * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def _request(
    http: httpx.AsyncClient,
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    *,
    keep_alive: bool,
) -> httpx.Request:
    sent = {
        k: v
        for k, v in headers.items()
        if k.lower() not in {"host", "connection", "accept-encoding"}
    }
    sent["Host"] = target.host_header
    # Raw bytes are read for the excerpt; a compressed body would be unreadable (or a bomb).
    sent["Accept-Encoding"] = "identity"
    if not keep_alive:
        # An ordinary pool is keyed by address, not name: a kept connection could carry the
        # next request for another name on the same address over TLS verified for this one.
        # (The runner's KeyedTransport keys by name too, and keeps its connections.)
        sent["Connection"] = "close"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    url = httpx.URL(
        scheme=target.scheme,
        host=target.address,
        port=target.port,
        raw_path=target.path_and_query.encode("ascii"),
    )
    return http.build_request(
        "POST", url, content=body, headers=sent, timeout=timeout, extensions=extensions
    )


def _raw_headers(
    target: Target, headers: Mapping[str, str], *, keep_alive: bool
) -> list[tuple[bytes, bytes]]:
    """The request's headers for KeyedTransport.post, as ``_request`` sets them for httpx."""
    skip = {"host", "connection", "accept-encoding", "content-length"}
    raw = [(b"Host", target.host_header.encode("ascii"))]
    raw += [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in headers.items()
        if k.lower() not in skip
    ]
    raw.append((b"Accept-Encoding", b"identity"))
    raw.append((b"Connection", b"keep-alive" if keep_alive else b"close"))
    return raw


def _declared_length(value: str | bytes | None) -> int | None:
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    first = text.split(",", 1)[0].strip()
    return int(first) if first.isdigit() and len(first) <= 20 else None


async def _read_answer(
    body: AsyncIterator[bytes], declared: int | None, deadline: float | None, budget: float
) -> tuple[str, str | None]:
    """Read an answer's body to its end before ``deadline``, keeping its first KiB.

    Returns the excerpt and, when the body could not be read to its end, why: it broke the
    protocol, announced or sent more than ``MAX_ANSWER_BODY``, or did not end in time (in
    ``budget`` seconds). Nothing past the excerpt is kept, so a receiver costs the worker a
    bounded amount of memory. ``deadline`` None: the body's reads keep a deadline of their own.
    """
    data = bytearray()
    if declared is not None and declared > MAX_ANSWER_BODY:
        return "", (
            f"the answer announces a body of {declared} bytes, "
            f"more than the {MAX_ANSWER_BODY // 1024} KiB bankhub reads"
        )
    read = 0
    why: str | None = None
    limit = contextlib.nullcontext() if deadline is None else asyncio.timeout_at(deadline)
    try:
        async with limit:
            async for chunk in body:
                if len(data) < EXCERPT_BYTES:
                    data += chunk[: EXCERPT_BYTES - len(data)]
                read += len(chunk)
                if read > MAX_ANSWER_BODY:
                    why = (
                        f"the answer's body goes on past the {MAX_ANSWER_BODY // 1024} KiB "
                        "bankhub reads"
                    )
                    break
    except (TimeoutError, httpx.TimeoutException):
        why = f"TimeoutError: the answer did not end within {budget:g} s"
    except (httpx.HTTPError, httpx.StreamError) as exc:
        why = _describe(exc)
    return bytes(data).decode("utf-8", errors="replace"), why


async def _answer_of(
    response: httpx.Response, deadline: float, budget: float
) -> tuple[str, str | None]:
    if response.is_stream_consumed:
        # A transport may hand back a body it has already read (httpx.MockTransport does).
        data = b""
        with contextlib.suppress(httpx.ResponseNotRead):
            data = response.content
        return data[:EXCERPT_BYTES].decode("utf-8", errors="replace"), None
    declared = _declared_length(response.headers.get("content-length"))
    return await _read_answer(response.aiter_raw(), declared, deadline, budget)


def _classify(
    status: int, retry_after_header: str | None, now: datetime
) -> tuple[Outcome, float | None, str | None]:
    if 200 <= status < 300:
        return "delivered", None, None
    if status == 410:
        return "gone", None, "endpoint gone (status 410)"
    if 300 <= status < 400:
        return "retry", None, f"redirect not followed (status {status})"
    retry_after = None
    if status in (429, 503) and retry_after_header is not None:
        retry_after = parse_retry_after(retry_after_header, now=now)
    return "retry", retry_after, f"status {status}"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _counted(
    send: Callable[P, Awaitable[AttemptResult]],
) -> Callable[P, Awaitable[AttemptResult]]:
    """Each attempt's outcome counted for the operator (``observability.metrics``), and logged:
    an attempt that did not deliver at ``info``, a delivered one at ``debug`` only. Every attempt
    is already a row of the delivery log (the dashboard's and ``GET`` of the deliveries) and a
    count in ``/metrics``; a line per delivered attempt at ``info`` repeated that at the rate of
    the deliveries and cost a worker a fifth of its deliveries per second (bench/webhooks.py).
    """

    @functools.wraps(send)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> AttemptResult:
        result = await send(*args, **kwargs)
        metrics.webhook_attempt(result.outcome)
        log.log(
            logging.DEBUG if result.outcome == "delivered" else logging.INFO,
            "webhook attempt: %s",
            result.outcome,
            extra={"status_code": result.status_code, "duration_ms": result.duration_ms},
        )
        return result

    return counted


@_counted
async def deliver(
    http: httpx.AsyncClient | KeyedTransport,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_private: bool,
    allow_http: bool,
    timeout: float,  # noqa: ASYNC109 - one budget for DNS, connect and answer
    resolver: Resolver | None = None,
    keep_alive: bool = False,
    targets: CheckedTargets | None = None,
) -> AttemptResult:
    """POST ``body`` with ``headers`` to ``url`` once, within ``timeout`` seconds in all.

    The URL goes through the SSRF guard, and the request goes to the checked address (so DNS
    cannot be asked again and answer differently) with the original ``Host`` and, for https,
    the original name as SNI, so TLS still verifies the real name. Redirects are not followed.
    The ``timeout`` covers the whole exchange: resolving, connecting, sending, and the answer
    read to its end (its body at most ``MAX_ANSWER_BODY``, of which the first KiB is kept). An
    answer that breaks off, runs on past that or does not end in time is a failed attempt,
    whatever its status. Network problems, timeouts included, come back as ``retry``; nothing
    is raised for them.
    ``http`` should speak HTTP/1.1 (httpx's default): every request asks for its connection to
    be closed, which an HTTP/2 connection would ignore; with ``keep_alive`` it does not, which
    is only safe when ``http``'s pool keys connections by the TLS name as well as the address
    (``bankhub.webhooks.transport.KeyedTransport``).
    With ``targets`` the checked target is taken from (and kept in) that per-process store
    instead of being resolved for this attempt alone; a network failure forgets it.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline = loop.time() + timeout

    def result(
        outcome: Outcome,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        error: str | None = None,
        excerpt: str = "",
    ) -> AttemptResult:
        elapsed = int((time.monotonic() - started) * 1000)
        return AttemptResult(outcome, status, retry_after, error, elapsed, excerpt)

    try:
        async with asyncio.timeout_at(deadline):
            try:
                if targets is not None:
                    target = await targets.target(
                        url, allow_private=allow_private, allow_http=allow_http
                    )
                else:
                    target = await resolve_target(
                        url, allow_private=allow_private, allow_http=allow_http, resolver=resolver
                    )
            except UnsafeUrl as exc:
                return result("rejected", error=str(exc))
            if isinstance(http, KeyedTransport):
                key = (
                    target.scheme,
                    target.address,
                    target.port,
                    target.host if target.scheme == "https" else None,
                )
                raw = await http.post(
                    key,
                    target.path_and_query.encode("ascii"),
                    _raw_headers(target, headers, keep_alive=keep_alive),
                    body,
                    deadline=deadline,
                )
            else:
                request = _request(http, target, body, headers, timeout, keep_alive=keep_alive)
                response = await http.send(request, stream=True, follow_redirects=False)
    except (TimeoutError, httpx.ReadTimeout, httpx.WriteTimeout):
        if targets is not None:
            targets.forget(url)
        return result("retry", error=f"TimeoutError: no answer within {timeout:g} s")
    except (httpx.HTTPError, OSError) as exc:
        if targets is not None:
            targets.forget(url)
        return result("retry", error=_describe(exc))

    if isinstance(http, KeyedTransport):
        try:
            if raw.body.complete:  # no body (204, Content-Length: 0): nothing to read
                excerpt, broken = "", None
            else:
                declared = _declared_length(raw.header(b"content-length"))
                # the transport holds each read of the body to the deadline it was given
                excerpt, broken = await _read_answer(aiter(raw.body), declared, None, timeout)
        finally:
            await raw.body.aclose()
        status = raw.status
        header = raw.header(b"retry-after")
        retry_after_header = None if header is None else header.decode("latin-1")
    else:
        try:
            excerpt, broken = await _answer_of(response, deadline, timeout)
        finally:
            await response.aclose()
        status = response.status_code
        retry_after_header = response.headers.get("retry-after")
    outcome, retry_after, error = _classify(status, retry_after_header, datetime.now(UTC))
    if broken is not None:
        # The head alone is no answer: a receiver whose body breaks off, runs on or stalls
        # has not answered, whatever its status said, and hears from us again.
        outcome, error = "retry", f"{broken} (status {status})"[:300]
    return result(
        outcome,
        status=status,
        retry_after=retry_after,
        error=error,
        excerpt=excerpt,
    )
