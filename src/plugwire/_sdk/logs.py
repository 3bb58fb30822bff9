"""Plugin-side logging: records go to stderr as JSON lines the host turns back into records."""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

__all__ = ["JsonLinesHandler", "install_logging"]


class JsonLinesHandler(logging.Handler):
    """Writes each record as one JSON object per line: ``level``, ``logger``, ``message``
    and, for exceptions, ``exc`` (the formatted traceback).

    Args:
        stream: Where to write; the process's stderr by default (looked up per record,
            so a replaced `sys.stderr` is honoured).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line: dict[str, object] = {
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                line["exc"] = logging.Formatter().formatException(record.exc_info)
            stream = self._stream or sys.stderr
            stream.write(json.dumps(line, ensure_ascii=False) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def install_logging(level: str | int = "INFO") -> None:
    """Send the root logger's records to stderr as JSON lines.

    A plugin that configured logging itself (the root logger has handlers) is left alone.
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(JsonLinesHandler())
    root.setLevel(level)
