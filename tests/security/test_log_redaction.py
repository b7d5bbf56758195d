"""S23: log records come out without secrets, with account identifiers masked and CR/LF
escaped, whatever logger or handler they pass through."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import random
import secrets
import string
import uuid
from collections.abc import Iterator

import pytest
import structlog

from bankhub.observability import logs
from bankhub.security import redact
from bankhub.security.secrets import new_api_secret, new_uuid_shaped_secret

IBAN = "DE89 3704 0044 0532 0130 00"
CARD = "4111 1111 1111 1111"
UUID_SECRET = "6f1c2f8e-3b7a-4c2d-9e0f-1a2b3c4d5e6f"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """The redaction as every bankhub process installs it, and a handler added afterwards."""
    logs.configure(stream=io.StringIO())
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
        logs.reset()


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


def test_a_public_key_fingerprint_stays_readable(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    """The SFTP drop logs its host key's fingerprint for pinning (``SHA256:`` and 43 base64
    characters, as ``ssh-keygen -l`` prints it); a secret in its place but of another length,
    or a run of that length without the prefix, is still removed."""
    logger, stream = logged
    digest = hashlib.sha256(b"host key").digest()
    fingerprint = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    one_run = "SHA256:" + "Ab1" * 14 + "C"  # no '+' or '/': a single run of 43
    logger.info("sftp host key %s, or %s", fingerprint, one_run)
    logger.info("SHA256:%s and %s", secrets.token_urlsafe(40), secrets.token_urlsafe(32))
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"INFO sftp host key {fingerprint}, or {one_run}"
    assert lines[1] == f"INFO SHA256:{redact.REDACTED} and {redact.REDACTED}"


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


def test_bare_issued_secrets_are_removed(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_bare_issued_secrets_are_removed — S23: bankhub's own secrets logged with no key
    before them (service-secrets, app-secrets, API keys, refresh and session tokens: 43
    characters of base64url; login-secrets: UUID-shaped) are removed, every one of many drawn;
    customer and request ids, hex digests and identifiers stay readable."""
    logger, stream = logged
    drawn = [new_api_secret() for _ in range(300)] + [secrets.token_urlsafe(32)]
    uuids = [new_uuid_shaped_secret() for _ in range(300)]
    for secret in drawn + uuids:
        logger.info("retrying with %s for the app", secret)
        logger.info("values (%s,%s)", secret, secret)
    customer = str(uuid.uuid4())
    request_id = str(uuid.uuid4())
    digest = hashlib.sha256(b"x").hexdigest()
    logger.info("erased customer_id=%s in request %s", customer, request_id)
    logger.info('body {"customer_id": "%s"}', customer)
    logger.info("digest %s of key key_0a1b2c3d4e5f6a7b", digest)
    logger.info("in test_bare_issued_secrets_are_removed_from_every_record_please")
    digits_last = "9bff3373-b4b9-4724-b8e6-719761993340"  # a request id ending in 12 digits
    logger.info("in request %s", digits_last)
    text = stream.getvalue()
    assert digits_last in text
    assert [s for s in drawn + uuids if s in text] == []
    assert text.count(customer) == 2
    assert request_id in text
    assert digest in text
    assert "key_0a1b2c3d4e5f6a7b" in text
    assert "test_bare_issued_secrets_are_removed_from_every_record_please" in text


def test_secrets_drawn_without_digits_are_removed_and_camel_case_names_stay(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    """test_secrets_drawn_without_digits_are_removed_and_camel_case_names_stay — S23: about one
    bankhub secret in 7,500 happens to hold no digit, ``-`` or ``_``; such secrets are removed
    too, while long CamelCase names (exception classes, say) stay readable."""
    logger, stream = logged
    draw = random.Random(20261206)  # fixed draws, so the test cannot flake
    letters = ["".join(draw.choice(string.ascii_letters) for _ in range(43)) for _ in range(3000)]
    letters.append("TWOTkxFoJJpFSOCPdCfiRZiXlSumERCNObeEOYHzwgg")  # one such secret, drawn
    # drawn too, with only 10 capitals in 43 letters: a rule counting capitals let it through
    letters.append("cVEqNsEwuywxQgeGmynfburSdwzcvlqrpqIgYbwgOkh")
    names = [
        "PytestUnhandledThreadExceptionWarning",
        "AuthlibDeprecationWarningForHttpxModule",
        "sqlalchemyPoolConnectionRecordFinalizer",
    ]
    for value in letters + names:
        logger.info("retrying with %s for the app", value)
    text = stream.getvalue()
    assert [s for s in letters if s in text] == []
    assert [n for n in names if n not in text] == []


def test_lower_case_ibans_are_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_lower_case_ibans_are_masked — S23: an IBAN in lower or mixed case, compact or in
    groups, followed by words or not, keeps its last four characters; a look-alike whose check
    digits do not hold stays as it is."""
    logger, stream = logged
    logger.info("from %s to", IBAN.lower())
    logger.info("to %s is mine", "gb82 west 1234 5698 7654 32")
    logger.info("iban=%s.", "De89370400440532013000")
    logger.info("ref %s", "de12abcdefghijklmnop")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "INFO from ****3000 to"
    assert lines[1] == "INFO to ****5432 is mine"
    assert lines[2] == "INFO iban=****3000."
    assert lines[3] == "INFO ref de12abcdefghijklmnop"


def test_url_userinfo_is_removed(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_url_userinfo_is_removed — S23: the user and password of a URL (a SimpleFIN access
    URL, a database URL) are removed; the rest of the URL and email addresses stay."""
    logger, stream = logged
    logger.info("GET %s failed", "https://demo:s3cr3t-access@bridge.example.com/simplefin/accounts")
    logger.info("database postgresql://bankhub_app:db-pass-123@db.internal:5432/bankhub")
    logger.info("mailed ops@example.com about https://hub.example.com/dashboard")
    text = stream.getvalue()
    for secret in ("demo", "s3cr3t-access", "bankhub_app", "db-pass-123"):
        assert secret not in text, secret
    assert "https://[REDACTED]@bridge.example.com/simplefin/accounts" in text
    assert "postgresql://[REDACTED]@db.internal:5432/bankhub" in text
    assert "mailed ops@example.com about https://hub.example.com/dashboard" in text


def test_pw_otp_and_code_keys_are_removed(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_pw_otp_and_code_keys_are_removed — S23: values named pw, otp, totp, tan, code,
    authorization_code or recovery_codes are removed, in text, extras and structlog events;
    status, error and exit codes stay."""
    logger, stream = logged
    logger.info("form pw=hunter2x otp=493817 totp: 551203 tan=778899")
    logger.info('answer {"code": "318215", "Code": "ABCD-EFGH"}')
    logger.info("oauth authorization_code=ac_9f8e7d6c recovery_codes=['rc-one', 'rc-two']")
    logger.info("sent", extra={"code": "664422", "otp": "112233"})
    logger.info("HTTP status code: 503, error code=LoginNotFound, exit code 3")
    structlog.get_logger("bankhub.test-redaction").info("confirmed", code="909090", pw="pa55")
    text = stream.getvalue()
    for secret in (
        "hunter2x",
        "493817",
        "551203",
        "778899",
        "318215",
        "ABCD-EFGH",
        "ac_9f8e7d6c",
        "rc-one",
        "rc-two",
        "664422",
        "112233",
    ):
        assert secret not in text, secret
    assert "HTTP status code: 503, error code=LoginNotFound, exit code 3" in text
    event = {"code": "909090", "pw": "pa55", "note": "kept"}
    assert redact.structlog_processor(None, "info", event) == {
        "code": "[REDACTED]",
        "pw": "[REDACTED]",
        "note": "kept",
    }


def _pem_keys() -> list[str]:
    """Private keys as operators hold them: PKCS#8, encrypted PKCS#8, traditional RSA and EC."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem, pkcs8, legacy = (
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.PrivateFormat.TraditionalOpenSSL,
    )
    return [
        rsa_key.private_bytes(pem, pkcs8, serialization.NoEncryption()).decode(),
        rsa_key.private_bytes(pem, pkcs8, serialization.BestAvailableEncryption(b"pw")).decode(),
        rsa_key.private_bytes(pem, legacy, serialization.NoEncryption()).decode(),
        ec_key.private_bytes(pem, legacy, serialization.NoEncryption()).decode(),
    ]


def test_pem_private_keys_are_removed_whole(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """test_pem_private_keys_are_removed_whole — S23, eIDAS: a QWAC or QSealC private key in a
    log line (as text, inside a repr with its line breaks escaped, or cut off before its END
    line) leaves no line of its base64; the kind of block stays readable."""
    logger, stream = logged
    keys = _pem_keys()
    for key in keys:
        logger.info("loaded key %s from settings", key)
        logger.info("settings %r", {"xs2a_qseal_key_pem": key})
    logger.info("truncated %s", keys[0][:700])
    text = stream.getvalue()
    for key in keys:
        for line in key.splitlines()[1:-1]:
            if not line.startswith(("Proc-Type", "DEK-Info")):
                # every piece of it, even one the base64url rule would have left
                for piece in line.replace("+", "/").split("/"):
                    if len(piece) >= 8:
                        assert piece not in text, piece
    assert "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----" in text
    assert "-----BEGIN ENCRYPTED PRIVATE KEY-----[REDACTED]" in text
    assert "-----BEGIN RSA PRIVATE KEY-----[REDACTED]" in text
    assert "-----BEGIN EC PRIVATE KEY-----[REDACTED]" in text
    assert "loaded key" in text
    assert "from settings" in text


def test_values_cleaned_once_are_remembered_without_the_secret_they_held(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    """Short values are cleaned once per process (a log line's main cost): the memo keeps only
    cleaned text, keyed by a hash, so a logged secret is not kept alive in it; it is bounded."""
    logger, stream = logged
    secret = new_api_secret()
    for _ in range(3):
        logger.info("service-secret: %s from %s", secret, IBAN)
    lines = stream.getvalue().splitlines()
    assert len(set(lines)) == 1
    assert secret not in lines[0]
    assert IBAN not in lines[0]
    assert all(not isinstance(key, str) for key in redact._MEMO)
    assert not any(secret in value for value in redact._MEMO.values())
    assert redact.clean(f"token={secret}") == redact.clean(f"token={secret}") == "token=[REDACTED]"
    for n in range(redact._MEMO_LIMIT + 10):
        redact.clean(f"value {n}")
    assert len(redact._MEMO) <= redact._MEMO_LIMIT
    # a value too long to remember is still cleaned
    long = "x" * redact._MEMO_LONGEST + f" bearer {secret}"
    assert secret not in redact.clean(long)


def test_a_test_connects_callback_path_keeps_no_login_secret(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    """The Bank Feed's test connect comes back to the dashboard with the seed's callback in
    the path, login-secret and all: the access line of that request (which logs the ASGI
    scope's decoded path) keeps the login id and drops the secret."""
    logger, stream = logged
    secret = new_uuid_shaped_secret()
    said = json.dumps({"status": "success", "login_id": 7, "secret": secret}, separators=(",", ":"))
    path = f"/dashboard/feed/returned/Tu5dvG07KVpx6bQ2/{said}"
    logger.info("%s %s", "GET", path, extra={"route": "/dashboard/feed/returned/{outcome:path}"})
    text = stream.getvalue()
    assert secret not in text
    assert '"login_id":7' in text


def test_percent_encoded_secrets_are_removed(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """S23: a URL or a form body logged as it was sent hides a secret behind percent-escapes:
    ``%22`` before a UUID-shaped login-secret is no word boundary, and ``%3D`` or ``%3A`` is no
    ``=`` or ``:`` after a secret's key. What is encoded once or twice is read decoded too;
    text with nothing to remove keeps its escapes as written."""
    logger, stream = logged
    secrets_ = [new_uuid_shaped_secret() for _ in range(20)]
    for secret in secrets_:
        logger.info("body %%7B%%22login-secret%%22%%3A%%22%s%%22%%7D", secret)
        logger.info("query ?q=%%22%s", secret)
        logger.info("redirect to /cb?x=1%%20%s", secret)
    logger.info("form login%2Dsecret%3Dhunter2&pw%253Dsecond-layer")
    logger.info("next page /v2/transaction?account_id=7&from_date=2024-01-01&q=caf%C3%A9%20au")
    logger.info("import 50% done")
    text = stream.getvalue()
    assert [s for s in secrets_ if s in text] == []
    assert "hunter2" not in text
    assert "second-layer" not in text
    assert text.count("[REDACTED]") >= 3 * len(secrets_) + 2
    # nothing to remove: as written
    assert "/v2/transaction?account_id=7&from_date=2024-01-01&q=caf%C3%A9%20au" in text
    assert "import 50% done" in text
