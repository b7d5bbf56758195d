"""The log chain in process: one rendering for structlog's events and the standard library's
records, the context of the task that logs, the format setting, and redaction on the way out."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from bankhub.config import ConfigError
from bankhub.observability import logs

CALLER_ID = "6f1c2f8e-3b7a-4c2d-9e0f-1a2b3c4d5e6f"
SECRET = "whsec_" + "Ab1" * 12


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure({"BANKHUB_ENV": "production"}, stream=stream)
    try:
        yield stream
    finally:
        logs.reset()


def read(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_library_and_bankhub_lines_share_one_json_rendering_and_the_context(
    lines: io.StringIO,
) -> None:
    """test_library_and_bankhub_lines_share_one_json_rendering_and_the_context — in
    production a library's stdlib record and a structlog event come out as JSON lines with the
    request id (a caller's UUID kept as it is), the app and the job bound in the task; values,
    whatever else the task bound and tracebacks are redacted (S23); the binding ends with the
    request."""
    with logs.bound_request(CALLER_ID):
        logs.bind_app(7)
        with structlog.contextvars.bound_contextvars(note=f"sent with {SECRET}"):
            logging.getLogger("httpx").warning("sent %s", f"secret={SECRET}")
        structlog.get_logger("bankhub.test").info("event", token=SECRET, count=3)
        with logs.bound_job("sync", login_id=11):
            try:
                raise RuntimeError(f"failed with {SECRET}")
            except RuntimeError:
                logging.getLogger("sqlalchemy.pool").exception("boom")
    logging.getLogger("alembic").warning("after")
    library, event, failure, after = read(lines)
    assert library["logger"] == "httpx"
    assert library["note"] == "sent with whsec_[REDACTED]"
    assert (library["request_id"], library["app_id"], library["level"]) == (CALLER_ID, 7, "warning")
    assert event["event"] == "event"
    assert (event["request_id"], event["app_id"], event["count"]) == (CALLER_ID, 7, 3)
    assert event["token"] == "[REDACTED]"
    assert (failure["job"], failure["login_id"]) == ("sync", 11)
    assert "RuntimeError" in failure["exception"]
    assert "Traceback" in failure["exception"]
    assert SECRET not in lines.getvalue()
    assert {"request_id", "app_id", "job", "login_id"}.isdisjoint(after)
    assert after["timestamp"].endswith("Z")


def test_console_lines_in_dev_and_the_format_setting(lines: io.StringIO) -> None:
    """test_console_lines_in_dev_and_the_format_setting — dev and test log console lines,
    production JSON, ``BANKHUB_LOG_FORMAT`` either anywhere; a wrong format or level names its
    variable."""
    assert logs.chosen_format({}) == "console"
    assert logs.chosen_format({"BANKHUB_ENV": "test"}) == "console"
    assert logs.chosen_format({"BANKHUB_ENV": "production"}) == "json"
    assert logs.chosen_format({"BANKHUB_ENV": "production", "BANKHUB_LOG_FORMAT": "console"}) == (
        "console"
    )
    assert logs.chosen_format({"BANKHUB_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ConfigError, match="BANKHUB_LOG_FORMAT"):
        logs.chosen_format({"BANKHUB_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="BANKHUB_LOG_LEVEL"):
        logs.chosen_level({"BANKHUB_LOG_LEVEL": "loud"})
    stream = io.StringIO()
    logs.configure({"BANKHUB_ENV": "dev"}, stream=stream)
    logging.getLogger("bankhub.test").info("readable %s", "line")
    text = stream.getvalue()
    assert "readable line" in text
    assert not text.startswith("{")
