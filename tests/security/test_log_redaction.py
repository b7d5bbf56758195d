"""S23: log records come out without secrets, with account identifiers masked and CR/LF
escaped, whatever logger or handler they pass through."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from bankhub.security import redact

IBAN = "DE89 3704 0044 0532 0130 00"
CARD = "4111 1111 1111 1111"
UUID_SECRET = "6f1c2f8e-3b7a-4c2d-9e0f-1a2b3c4d5e6f"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """The redaction as every bankhub process installs it, and a handler added afterwards."""
    redact.install()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("bankhub.test-redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        redact.uninstall()


def test_secrets_are_removed_from_log_records(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    """test_secrets_are_removed_from_log_records — S23: header values of credentials, bearer
    tokens, JWTs, whsec_ secrets, uuid-shaped secrets next to secret-like keys and passwords."""
    logger, stream = logged
    logger.info("headers: %s", {"client-id": "cl_9f8e7d", "service-secret": "s3cr3t-svc-value"})
    logger.info("app-secret: appsecretvalue123 login-secret=%s", UUID_SECRET)
    logger.info("Authorization: Bearer abc.def-ghi_jkl token=%s", "tok_live_123456")
    logger.info("jwt %s", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJlLXZhbHVl")
    logger.info("endpoint secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw rotated")
    logger.info('form {"username": "alice", "password": "hunter2 and more"}')
    logger.info("user said", extra={"password": "pa55", "note": "pin=4321"})
    text = stream.getvalue()
    for secret in (
        "cl_9f8e7d",
        "s3cr3t-svc-value",
        "appsecretvalue123",
        UUID_SECRET,
        "abc.def-ghi_jkl",
        "tok_live_123456",
        "eyJhbGciOiJFUzI1NiJ9",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "hunter2",
    ):
        assert secret not in text, secret
    assert text.count("[REDACTED]") >= 9
    assert "alice" in text  # what is not secret stays readable


def test_account_identifiers_are_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_account_identifiers_are_masked — S23: IBANs, card numbers (Luhn) and long account
    numbers keep only their last four characters."""
    logger, stream = logged
    logger.info("transfer from %s", IBAN)
    logger.info("card %s, card %s", CARD, "5500-0000-0000-0004")
    logger.info("account_number=%s and account 12345678", "000123456789012")
    logger.info("sync run 42 took 1.5 s at 2026-11-20T09:00:00Z, amount 1234.56")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "INFO transfer from ****3000"
    assert lines[1] == "INFO card ****1111, card ****0004"
    assert "000123456789012" not in lines[2]
    assert "****9012" in lines[2]
    assert "12345678" not in lines[2]
    assert "****5678" in lines[2]
    assert lines[3] == "INFO sync run 42 took 1.5 s at 2026-11-20T09:00:00Z, amount 1234.56"


def test_crlf_injection_is_escaped(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_crlf_injection_is_escaped — S23: a value with CR/LF cannot forge a log line."""
    logger, stream = logged
    logger.warning("login failed for %s", "bob\r\nINFO admin logged in")
    lines = stream.getvalue().splitlines()
    assert lines == ["WARNING login failed for bob\\r\\nINFO admin logged in"]


def test_tracebacks_are_redacted(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_tracebacks_are_redacted — S23: an exception message carrying a secret is removed
    from the logged traceback (which keeps its lines)."""
    logger, stream = logged
    try:
        raise ValueError(f"bad request with service-secret={UUID_SECRET}")
    except ValueError:
        logger.exception("failed")
    text = stream.getvalue()
    assert UUID_SECRET not in text
    assert "Traceback" in text


def test_structlog_events_are_redacted(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_structlog_events_are_redacted — S23: structlog's chain has the same redaction."""
    _, stream = logged
    handler = logging.StreamHandler(stream)
    structured = logging.getLogger("bankhub.structured")
    structured.addHandler(handler)
    structured.setLevel(logging.INFO)
    structured.propagate = False
    try:
        structlog.get_logger("bankhub.structured").info(
            "webhook\nsent", secret="whsec_abcdefabcdef", iban=IBAN, url="https://x.test/?a=1"
        )
    finally:
        structured.removeHandler(handler)
    text = stream.getvalue()
    assert "whsec_abcdefabcdef" not in text
    assert "3704 0044" not in text
    assert text.count("\n") == 1  # one record, one line
    assert "webhook" in text
    assert "https://x.test/?a=1" in text
