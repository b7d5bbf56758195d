"""S23: log redaction for every bankhub process.

Secrets and tokens are removed, IBANs, card numbers and long account numbers are cut to their
last four characters, and CR/LF in logged values are escaped so that a value cannot forge a line.

Secrets are found by the key that names them (``service-secret: ...``, ``pw=...``, ``otp=...``),
by their scheme (``Bearer``, JWTs, ``whsec_``, the userinfo of a URL, PEM private keys such as
the eIDAS QWAC's and QSealC's) and by their shape alone:
bankhub's login-secrets are 128 random bits written like a UUID, and its other secrets 43
characters of URL-safe base64, so a UUID-shaped value is removed unless a customer, request or
endpoint id is named before it, and a run of 32 or more base64url characters mixing upper case,
lower case and digits (or ``-``/``_``), or letters alone that do not read as CamelCase words,
is removed wherever it stands. Hex digests, request ids and
identifiers (no mix of cases) stay readable. No library does this for free text; the patterns are
ours, and the tests name what each one catches and leaves.
``install()`` applies it to every ``logging`` record (through the record factory, so handlers
added later by granian or a library are covered too); ``observability.logs`` applies it to
structlog's events as well.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import structlog

REDACTED = "[REDACTED]"

#: names of secret-carrying keys and headers (a pattern, not a secret)
KEY_NAMES = (
    r"client[-_ ]?id|service[-_ ]?secret|app[-_ ]?secret|login[-_ ]?secret|authorization"
    r"|pass(?:word|wd|phrase|code)?|pwd|pw|pin|secret|client[-_]?secret|webhook[-_]?secret"
    r"|(?:access|refresh|id|bearer|api|auth)?[-_]?token|api[-_]?key|credentials?"
    r"|t?otp|tan|(?:auth(?:orization)?|otp|sms|verification|recovery|one[-_]?time)[-_ ]?codes?"
    # a bare "code" is a one-time code or an OAuth code; "status code" and "error code" are not
    r"|(?<!status\s)(?<!error\s)(?<!exit\s)(?<!http\s)(?<!response\s)codes?"
)
#: ``key: value``, ``key=value``, ``"key": "value"``, ``'key': 'value'`` for secret-like keys
_KEY_VALUE = re.compile(
    rf"""(?ix)
    (?P<key>["']?\b(?:{KEY_NAMES})\b["']?\s*[:=]\s*)
    (?:
        (?P<q>["'])(?P<quoted>(?:\\.|(?!(?P=q)).)*)(?P=q)
      | (?P<list>\[[^\]]*\])
      | (?P<scheme>(?:bearer|basic|digest)\s+)?(?P<bare>[^\s,;&}}\]\)"']+)
    )
    """
)
#: a PEM private key (PKCS#8, encrypted or not, or a traditional RSA/EC one), whole: the
#: base64 of a key is standard base64, whose ``+`` and ``/`` cut it into runs too short for
#: ``_BASE64URL_RUN``; a block cut off before its END line is removed to the end of the text
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<kind>(?:[A-Z0-9]+ )*PRIVATE KEY)-----.*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_WHSEC = re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
#: any case; masked only when the ISO 13616 check digits hold (``_lenient_iban``)
_ANY_CASE_IBAN = re.compile(r"(?i)\b[a-z]{2}\d{2}(?:[ ]?[a-z0-9]){11,30}\b")
#: ``scheme://user:password@host``: the whole userinfo (an access URL's user is a secret too)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@\[\]]+@")
_UUID = re.compile(
    r"(?i)(?P<named>\b(?:customer|request|endpoint)(?:[-_ ]?id)?[\"']?\s*[:=]?\s*[\"']?)?"
    r"\b(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"
)
_BASE64URL_RUN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])")
_CAMEL_CASE_WORDS = re.compile(r"(?:[A-Z]?[a-z]{2,})+")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_ACCOUNT_NEAR_KEY = re.compile(
    r"(?i)(\b(?:account|acct|acc)(?:[-_ ]?(?:number|no|num|id))?\b[\"']?\s*[:=#]?\s*[\"']?)(\d{5,})"
)
#: not a UUID's last group (all digits in about one UUID of 280): the UUID rule decides those
_LONG_NUMBER = re.compile(r"(?<![\w.,])(?<![0-9a-fA-F]{4}-)\d{10,}(?![\w])(?![.,]\d)")


def _last4(value: str) -> str:
    compact = re.sub(r"[ -]", "", value)
    return "*" * 4 + compact[-4:]


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return _last4(digits) if _luhn(digits) else match.group(0)


def _iban_checks(text: str) -> bool:
    """ISO 13616: the country and check digits moved to the end, read as a number, mod 97 is 1."""
    compact = text.replace(" ", "").upper()
    if not compact.isalnum() or not compact[:2].isalpha():
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _lenient_iban(match: re.Match[str]) -> str:
    """An IBAN in lower or mixed case: the longest run of its words whose check digits hold
    (the pattern may have taken words that follow it, as in ``de89 3704 ... 00 is mine``)."""
    text = match.group(0)
    words = text.split(" ")
    for end in range(len(words), 0, -1):
        candidate = " ".join(words[:end])
        if len(candidate.replace(" ", "")) >= 15 and _iban_checks(candidate):
            rest = text[len(candidate) :]
            return _last4(candidate) + rest
    return text


def _uuid(match: re.Match[str]) -> str:
    if match.group("named"):
        return match.group(0)
    return REDACTED


#: ``ssh-keygen -l``'s form of a public key's fingerprint, a public value the SFTP drop logs for
#: pinning its host key: kept readable
_FINGERPRINT = re.compile(r"(?<![A-Za-z0-9+/])SHA256:[A-Za-z0-9+/]{43}(?![A-Za-z0-9+/=])")


def _runs_outside_fingerprints(text: str) -> str:
    spans = [m.span() for m in _FINGERPRINT.finditer(text)] if "SHA256:" in text else []
    if not spans:
        return _BASE64URL_RUN.sub(_base64url_run, text)

    def run(match: re.Match[str]) -> str:
        start, end = match.span()
        if any(low <= start and end <= high for low, high in spans):
            return match.group(0)
        return _base64url_run(match)

    return _BASE64URL_RUN.sub(run, text)


def _base64url_run(match: re.Match[str]) -> str:
    run = match.group(0)
    upper = sum(1 for c in run if c.isupper())
    if not 0 < upper < len(run):
        return run
    if any(c.isdigit() or c in "-_" for c in run):
        return REDACTED
    # Letters only: about one secret in 7,500 draws no digit, '-' or '_'. A CamelCase name (an
    # exception class, say) is words of a capital and two or more small letters; a random run
    # of 32+ letters reads so in fewer than one draw in 100,000 (any capital followed by a
    # capital or by one small letter breaks it). Counting capitals instead let about one such
    # secret in 3,000 through: a random run with few capitals is not rare enough.
    return run if _CAMEL_CASE_WORDS.fullmatch(run) else REDACTED


def _key_value(match: re.Match[str]) -> str:
    if match.group("q"):
        return f"{match.group('key')}{match.group('q')}{REDACTED}{match.group('q')}"
    if match.group("list"):
        return f"{match.group('key')}[{REDACTED}]"
    return f"{match.group('key')}{match.group('scheme') or ''}{REDACTED}"


#: a percent-encoded octet (``%22``, ``%3D``): a URL or a form body logged as sent
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
#: how many layers of percent-encoding are undone (a value encoded twice, ``%253D``)
_DECODE_LAYERS = 3


def _decoded(text: str) -> str:
    for _ in range(_DECODE_LAYERS):
        if not _PERCENT_ESCAPE.search(text):
            break
        text = unquote(text)
    return text


def redact(text: str) -> str:
    """The text with secrets removed and account identifiers masked (CR/LF untouched).

    Percent-encoded text (a query string or a form body logged as it came) is read decoded as
    well: encoded, ``%22login-secret%22%3A%22<uuid>%22`` hides the key's separators and the
    value's edges from the patterns. When the decoded text holds anything to remove, the
    decoded text, redacted, is what is kept; otherwise the text stays as it was written."""
    if "%" in text:
        decoded = _decoded(text)
        if decoded != text:
            cleaned = _redact(decoded)
            if cleaned != decoded:
                return cleaned
    return _redact(text)


def _redact(text: str) -> str:
    text = _PEM_PRIVATE_KEY.sub(
        lambda m: f"-----BEGIN {m['kind']}-----{REDACTED}-----END {m['kind']}-----", text
    )
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _KEY_VALUE.sub(_key_value, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _WHSEC.sub("whsec_" + REDACTED, text)
    text = _UUID.sub(_uuid, text)
    text = _runs_outside_fingerprints(text)
    text = _IBAN.sub(lambda m: _last4(m.group(0)), text)
    text = _ANY_CASE_IBAN.sub(_lenient_iban, text)
    text = _CARD.sub(_card, text)
    text = _ACCOUNT_NEAR_KEY.sub(lambda m: m.group(1) + _last4(m.group(2)), text)
    return _LONG_NUMBER.sub(lambda m: _last4(m.group(0)), text)


def escape_lines(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


#: short values a process logs again and again ("webhook attempt: delivered", a route's
#: template, a status) are cleaned once: thirteen patterns per value were most of a log line's
#: cost. The memo is keyed by the text's hash, never by the text, so a secret that was logged
#: is not kept alive in it; only cleaned text is. A hash collision (64 bits, salted per
#: process) could at worst print another cleaned value. Bounded: emptied when full.
_MEMO: dict[tuple[int, int], str] = {}
_MEMO_LIMIT = 4096
_MEMO_LONGEST = 256


def clean(text: str) -> str:
    """What a logged value becomes: redacted, then on one line."""
    if len(text) > _MEMO_LONGEST:
        return escape_lines(redact(text))
    key = (len(text), hash(text))
    cleaned = _MEMO.get(key)
    if cleaned is None:
        cleaned = escape_lines(redact(text))
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[key] = cleaned
    return cleaned


_SECRET_KEY_NAME = re.compile(rf"(?i)^(?:{KEY_NAMES})$")
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


#: an event's exception (rendered later, then redacted); its request id: bankhub's own value,
#: ``[A-Za-z0-9._:-]{1,64}`` (``api.request_context``), often a caller's UUID that the shape
#: rules would hide, and what the audit log and the answer's header name it by anyway; an access
#: line's route: a template from bankhub's route table, never the path the caller sent
_UNTOUCHED = frozenset({"exc_info", "request_id", "route"})


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Rewrite a record in place: the message formatted and cleaned, extras and traceback too.

    A structlog event on its way to its formatter (``observability.logs``) stays an event: its
    values are cleaned one by one, and the formatter renders it."""
    if isinstance(record.msg, dict) and not record.args:
        structlog_processor(None, record.levelname.lower(), record.msg)
        return record
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = f"{record.msg!s} {record.args!r}"
    record.msg = clean(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        # a traceback keeps its lines, but not the secrets in them
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    for key, value in list(record.__dict__.items()):
        if key in _STANDARD_ATTRS or key in _UNTOUCHED:
            continue
        if _SECRET_KEY_NAME.match(key):
            record.__dict__[key] = REDACTED
        elif isinstance(value, str):
            record.__dict__[key] = clean(value)
    return record


def structlog_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: secret-like keys dropped to ``[REDACTED]``, every string cleaned."""
    for key, value in list(event_dict.items()):
        if key in _UNTOUCHED:
            continue
        if _SECRET_KEY_NAME.match(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = clean(value)
        elif isinstance(value, (dict, list, tuple)):
            event_dict[key] = clean(repr(value))
    return event_dict


_installed: list[Callable[..., logging.LogRecord]] = []


def install() -> None:
    """Redact every log record this process makes (idempotent)."""
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name is None:
            # ``logging.makeLogRecord`` (structlog's formatter copies every record so): an empty
            # shell that is then filled with a record already redacted when it was made
            return record
        return redact_record(record)

    logging.setLogRecordFactory(factory)
    _installed.append(previous)


def uninstall() -> None:
    """Restore the record factory ``install`` replaced (for tests)."""
    if _installed:
        logging.setLogRecordFactory(_installed.pop())
        structlog.reset_defaults()
