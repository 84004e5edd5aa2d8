"""Logging: stderr always, plus logs/app.log rotated at midnight, seven kept.

Every line goes through `SafeFormatter`: values a client chose (a path with
%0a in it, a header, a username) can't start a line of their own or send
terminal escapes, whichever logger wrote them.
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path

from flask import Flask

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers besides Flask's app.logger that write to our handlers. waitress
# logs the path of a request it failed to serve.
LOGGERS = ("nano_banana", "waitress")
# Every line of a record after its first starts with this: a traceback keeps
# its shape, and nothing in it can pass for a record of its own.
CONTINUATION = "    | "

_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_MULTILINE_TABLE = str.maketrans({**_ESCAPES, ord("\n"): "\n" + CONTINUATION})


def escape_controls(text: str) -> str:
    """`text` on one line: control characters (C0, DEL, C1, line and
    paragraph separators) written as escapes."""
    return text.translate(_ESCAPE_TABLE)


class SafeFormatter(logging.Formatter):
    """The message (template and values) on one line, escaped; tracebacks and
    stacks with every line after the first marked as a continuation."""

    def format(self, record: logging.LogRecord) -> str:
        # logging.Formatter.format, with the message escaped and a traceback
        # never taken from the record's cache (another handler's formatter
        # may have put it there unescaped).
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        parts = [self.formatMessage(record)]
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(_continued(record.exc_text))
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)

    def formatException(self, ei) -> str:
        return _continued(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _continued(super().formatStack(stack_info))


def _continued(text: str) -> str:
    return CONTINUATION + text.translate(_MULTILINE_TABLE)


def init_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config.get("LOG_LEVEL", "INFO")).upper(), logging.INFO)
    formatter = SafeFormatter(FORMAT)
    handlers: list[logging.Handler] = []
    if not app.testing:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        handlers.append(stream)
    log_dir = app.config.get("LOG_DIR")
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        file_handler = TimedRotatingFileHandler(
            Path(log_dir) / "app.log", when="midnight", backupCount=7, encoding="utf-8", delay=True
        )
        file_handler.setFormatter(formatter)
        handlers.append(file_handler)
    # Our modules log under "nano_banana"; Flask's app.logger and waitress
    # go to the same handlers so every line lands in one place.
    for logger in (*(logging.getLogger(name) for name in LOGGERS), app.logger):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            if not isinstance(handler, logging.StreamHandler) or isinstance(
                handler, logging.FileHandler
            ):
                handler.close()
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
