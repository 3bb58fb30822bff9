"""Log records as hclog JSON lines on stderr: what a go-plugin host reads from its plugins.

A go-plugin host reads each line of its plugin's stderr; a JSON object with `@level` (one of
`trace`, `debug`, `info`, `warn`, `error`) and `@message` is logged at that level under the
plugin's name, its other keys becoming the line's fields. `@timestamp` must have exactly six
fractional digits (Go parses it with `2006-01-02T15:04:05.000000Z07:00`; any other form makes
the host log the whole line verbatim at DEBUG). Lines that are not JSON are logged at DEBUG.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, Final, TextIO

__all__ = ["STDERR_LOCK", "HclogHandler", "hclog_level", "hclog_line", "hclog_timestamp", "install_hclog"]

#: Held while a whole line is written to stderr, so lines written by threads do not interleave.
STDERR_LOCK: Final = threading.Lock()

# The attributes every LogRecord has; anything else came from `extra=` and becomes a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def hclog_level(levelno: int) -> str:
    """hclog's name for a stdlib level: below DEBUG is `trace`, WARNING is `warn`, CRITICAL `error`."""
    if levelno < logging.DEBUG:
        return "trace"
    if levelno < logging.INFO:
        return "debug"
    if levelno < logging.WARNING:
        return "info"
    if levelno < logging.ERROR:
        return "warn"
    return "error"


def hclog_timestamp(created: float) -> str:
    """`created` (seconds since the epoch) as hclog writes it, in UTC: always six fractional digits."""
    seconds = int(created)
    micros = round((created - seconds) * 1_000_000)
    if micros == 1_000_000:  # rounding carried into the next second
        seconds, micros = seconds + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def hclog_line(level: str, message: str, *, module: str = "", created: float | None = None, **fields: Any) -> str:
    """One hclog JSON line (without its newline): `@level`, `@message`, `@timestamp`, `@module`
    when given, then `fields` (values JSON cannot hold are written as their `str()`)."""
    line: dict[str, Any] = {
        "@level": level,
        "@message": message,
        "@timestamp": hclog_timestamp(time.time() if created is None else created),
    }
    if module:
        line["@module"] = module
    for key, value in fields.items():
        line.setdefault(key, value)
    return json.dumps(line, ensure_ascii=False, default=str)


class HclogHandler(logging.Handler):
    """Writes each record as one hclog JSON line: `@level` from the record's level,
    `@message`, `@timestamp`, `@module` (the logger's name), the record's `extra=` fields and,
    for an exception, `exception` (the formatted traceback).

    Args:
        stream: Where to write; the process's stderr by default (looked up per record, so a
            replaced `sys.stderr` is honoured).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {key: value for key, value in record.__dict__.items() if key not in _STANDARD}
            if record.exc_info:
                fields["exception"] = logging.Formatter().formatException(record.exc_info)
            text = hclog_line(
                hclog_level(record.levelno), record.getMessage(), module=record.name, created=record.created, **fields
            )
            stream = self._stream or sys.stderr
            with STDERR_LOCK:
                stream.write(text + "\n")
                stream.flush()
        except Exception:
            self.handleError(record)


def install_hclog(level: str | int = "INFO") -> None:
    """Send the root logger's records to stderr as hclog JSON lines at `level` and above.

    A plugin that configured logging itself (the root logger has handlers) is left alone.
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(HclogHandler())
    root.setLevel(level)
