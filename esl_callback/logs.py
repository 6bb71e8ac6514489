"""Logging set up from the configuration: plain or JSON lines, with call UUIDs and request ids.

Context travels on the records themselves, never in contextvars or thread-locals (every call is a
greenlet under gevent, and greenlets share the one thread)::

    log = logging.getLogger(__name__)
    call_log = call_logger(log, call_uuid=uuid, request_id=request.id)
    call_log.info("originating leg A to %s", number)
    call_log = call_log.bind(leg="b")          # more context, same call

Any ``extra`` on a record is printed: ``[call_uuid=... request_id=42 leg=b]`` in plain lines,
as keys of the object in JSON lines.
"""

import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from esl_callback.config import ConfigError, LoggingSettings

HANDLER_NAME = "esl-callback"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "taskName"}

# Shown first, in this order, when present.
_LEADING_CONTEXT = ("call_uuid", "request_id")


def record_context(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields on ``record`` (its ``extra``), call UUID and request id first."""
    extra = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}
    leading = {k: extra.pop(k) for k in _LEADING_CONTEXT if k in extra}
    return {**leading, **extra}


def _one_line(text: str) -> str:
    """Text with line breaks escaped, so caller-controlled values cannot forge log lines."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


class PlainFormatter(logging.Formatter):
    """``2025-01-02 10:00:00,123 INFO esl_callback.dialer [call_uuid=... request_id=7] text``."""

    def format(self, record: logging.LogRecord) -> str:
        context = record_context(record)
        shown = " ".join(f"{key}={_one_line(str(value))}" for key, value in context.items())
        line = (
            f"{self.formatTime(record)} {record.levelname} {record.name}"
            f"{f' [{shown}]' if shown else ''}: {_one_line(record.getMessage())}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_context(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class CallLogger(logging.LoggerAdapter):
    """A logger adapter stamping every record with fixed context (call UUID, request id, ...)."""

    def __init__(self, logger: logging.Logger, context: Mapping[str, Any]) -> None:
        reserved = sorted(set(context) & _STANDARD_ATTRIBUTES)
        if reserved:
            raise ValueError(f"log context cannot use LogRecord attribute names: {reserved}")
        super().__init__(logger, dict(context))

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        """Merge the bound context with any ``extra`` of the call (the call's own extra wins)."""
        kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs

    def bind(self, **context: Any) -> "CallLogger":
        """A logger with this context plus ``context`` (None values are left out)."""
        added = {key: value for key, value in context.items() if value is not None}
        return CallLogger(self.logger, {**self.extra, **added})


def call_logger(
    logger: logging.Logger | str,
    call_uuid: str | None = None,
    request_id: int | str | None = None,
    **context: Any,
) -> CallLogger:
    """A logger whose records carry ``call_uuid``, ``request_id`` and any other ``context``."""
    base = logging.getLogger(logger) if isinstance(logger, str) else logger
    return CallLogger(base, {}).bind(call_uuid=call_uuid, request_id=request_id, **context)


def check_log_file(settings: LoggingSettings) -> None:
    """Raise ConfigError when `logging.file` could not be opened for writing (checked without
    creating it, for `config check`)."""
    if not settings.file:
        return
    path = Path(settings.file)
    if path.exists():
        problem = None if path.is_file() and os.access(path, os.W_OK) else "not a writable file"
    elif not path.parent.is_dir():
        problem = f"directory {path.parent} does not exist"
    else:
        problem = None if os.access(path.parent, os.W_OK | os.X_OK) else "directory not writable"
    if problem:
        raise ConfigError([f"logging.file: cannot write {settings.file}: {problem}"])


def setup_logging(settings: LoggingSettings, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record (root logger) to stderr, ``stream`` or the configured file.

    Calling it again replaces the handler it installed before. The file handler reopens the
    file when logrotate moves it. Raises ConfigError if the log file cannot be opened.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    if settings.file:
        try:
            new: logging.Handler = logging.handlers.WatchedFileHandler(
                settings.file, encoding="utf-8"
            )
        except OSError as problem:
            message = f"logging.file: cannot open {settings.file}: {problem.strerror}"
            raise ConfigError([message]) from None
    else:
        new = logging.StreamHandler(stream or sys.stderr)
    new.set_name(HANDLER_NAME)
    # Neither format prints a thread or process; and asking for the thread's name from a
    # greenlet makes threading keep a dummy Thread (1-2 KB) for every live call that logged.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    new.setFormatter(JsonFormatter() if settings.format == "json" else PlainFormatter())
    root.addHandler(new)
    root.setLevel(settings.level)
    logging.captureWarnings(True)
    return new
