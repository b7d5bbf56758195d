"""Every log line of a bankhub process, bankhub's and the libraries', through one structlog chain.

``configure()`` runs once per process (the command line's ``main``, and ``serve``'s granian
worker when it builds the application). It installs one handler on the root logger whose
formatter is structlog's ``ProcessorFormatter``, so that a record from the standard library
(granian, SQLAlchemy, httpx, Alembic, bankhub's own ``logging`` loggers) and an event from
``structlog.get_logger()`` pass the same processors and come out the same way:

* JSON lines (``{"event", "level", "logger", "timestamp", ...}``) in production, readable
  console lines in dev and test; ``BANKHUB_LOG_FORMAT=json|console`` chooses either anywhere;
* ``BANKHUB_LOG_LEVEL`` (``info`` by default) for bankhub and the libraries alike; httpx and
  httpcore, which note every HTTP call at ``info``, and coredis, which notes every retry of a
  Redis command at ``info`` (bankhub says itself what an unreachable Redis means), speak from
  ``warning`` on;
* the context bound with ``structlog.contextvars`` in the task that logs: ``request_id``
  (``api.request_context``), ``app_id`` once the caller is authenticated (:func:`bind_app`), and
  ``job`` with ``login_id`` or ``delivery_id`` for background work (:func:`bound_job`);
* the redaction of S23 (``security.redact``): every record is already cleaned when it is made
  (the record factory), and every event again here, just before rendering.

granian configures logging itself in both of ``serve``'s processes; :func:`dict_config` is handed
to it, so its own lines (start-up, worker spawns) take the same way.
"""

from __future__ import annotations

import logging
import logging.config
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any, Final, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from bankhub.config import ConfigError
from bankhub.security import redact

Format = Literal["json", "console"]
FORMATS: Final = ("json", "console")
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
#: libraries that log every request they make (or retry) at ``info``: quiet unless asked for debug
_CHATTY: Final = ("httpx", "httpcore", "coredis")
#: context bankhub binds itself, with nothing to redact: the request id is checked when it
#: is made (``api.request_context``), the job is a name of ours
_OWN: Final = frozenset({"request_id", "job"})
#: the background work this task does (:func:`bound_job`), all its keys in one variable: the
#: worker binds it for every webhook attempt, and ``structlog.contextvars`` (a variable per key,
#: each set and reset) cost a few per cent of the worker's whole time at a thousand attempts a
#: second
_JOB: ContextVar[Mapping[str, Any] | None] = ContextVar("bankhub_log_job", default=None)


def chosen_format(environ: Mapping[str, str]) -> Format:
    """``BANKHUB_LOG_FORMAT`` when set, else JSON in production and console lines elsewhere."""
    given = environ.get("BANKHUB_LOG_FORMAT", "").strip().lower()
    if given:
        if given not in FORMATS:
            raise ConfigError(f"BANKHUB_LOG_FORMAT must be json or console, not {given[:20]!r}")
        return "json" if given == "json" else "console"
    production = environ.get("BANKHUB_ENV", "").strip().lower() == "production"
    return "json" if production else "console"


def chosen_level(environ: Mapping[str, str]) -> str:
    given = environ.get("BANKHUB_LOG_LEVEL", "info").strip().lower() or "info"
    if given not in LEVELS:
        raise ConfigError(f"BANKHUB_LOG_LEVEL must be one of {', '.join(LEVELS)}")
    return given.upper()


def _merge_job(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The bound job's keys, unless the line names them itself (as ``merge_contextvars``)."""
    job = _JOB.get()
    if job:
        for key, value in job.items():
            event_dict.setdefault(key, value)
    return event_dict


def _redacted(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """S23 for what joined the event after its record was made: the record itself (message,
    extras, a structlog event's values) was cleaned by ``security.redact``'s record factory, so
    only the task's context and a rendered traceback are left. A traceback keeps its lines (JSON
    escapes them, and a console is dev's)."""
    for key, value in context().items():
        if isinstance(value, str) and key not in _OWN and key in event_dict:
            event_dict[key] = redact.clean(value)
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = redact.redact(exception)
    return event_dict


def _shared() -> list[Processor]:
    """What every event gets, whether structlog or a library's ``logging`` call made it."""
    return [
        structlog.contextvars.merge_contextvars,
        _merge_job,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(fmt: Format = "console") -> structlog.stdlib.ProcessorFormatter:
    """The root handler's formatter (a factory, so that ``logging.config`` can name it)."""
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared(), structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redacted,
            renderer,
        ],
    )


def dict_config(fmt: Format, level: str) -> dict[str, Any]:
    """The ``logging.config`` dictionary of a bankhub process (granian takes it as it is)."""
    quiet = "DEBUG" if level == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"bankhub": {"()": f"{__name__}.formatter", "fmt": fmt}},
        "handlers": {
            "bankhub": {
                "class": "logging.StreamHandler",
                "formatter": "bankhub",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["bankhub"], "level": level},
        "loggers": {
            # granian's own loggers have handlers of their own (on stdout) unless told otherwise
            "_granian": {"handlers": [], "level": level, "propagate": True},
            "granian.access": {"handlers": [], "level": level, "propagate": True},
            **{name: {"level": quiet, "propagate": True} for name in _CHATTY},
        },
    }


def process_config() -> dict[str, Any]:
    """:func:`dict_config` as the environment chooses it (for granian)."""
    return dict_config(chosen_format(os.environ), chosen_level(os.environ))


def configure(environ: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> None:
    """Set up this process's logging (again: the last call wins). ``stream``: where the lines
    go instead of standard error (tests)."""
    env = os.environ if environ is None else environ
    fmt, level = chosen_format(env), chosen_level(env)
    redact.install()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(dict_config(fmt, level))
    if stream is not None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)


def reset() -> None:
    """Undo :func:`configure` (tests)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    redact.uninstall()
    structlog.reset_defaults()


# --- what a line is about -------------------------------------------------------------------


def bind_app(app_id: int) -> None:
    """From here on, the lines of this request (its task) name the app it is served for."""
    structlog.contextvars.bind_contextvars(app_id=app_id)


@contextmanager
def bound_request(request_id: str) -> Iterator[None]:
    """The lines written while a request is served carry its id, and its app once known; the
    binding ends with the request, whatever was bound inside it."""
    tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        yield
    finally:
        structlog.contextvars.unbind_contextvars("app_id")
        structlog.contextvars.reset_contextvars(**tokens)


@contextmanager
def bound_job(job: str, **ids: int | str | None) -> Iterator[None]:
    """The lines of one piece of background work carry its kind and what it works on."""
    token = _JOB.set({"job": job, **ids})
    try:
        yield
    finally:
        _JOB.reset(token)


def context() -> MutableMapping[str, Any]:
    """What the lines written here and now would carry (tests, diagnostics)."""
    merged = structlog.contextvars.get_contextvars()
    for key, value in (_JOB.get() or {}).items():
        merged.setdefault(key, value)
    return merged
