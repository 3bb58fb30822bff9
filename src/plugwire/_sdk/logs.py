"""Plugin-side logging: records go to stderr as JSON lines the host turns back into records.

While tracing is on (``PLUGWIRE_TRACING=1``, `tracing.py`), records carry the ids of the
current span (or of the call's traceparent): ``trace_id`` and ``span_id``, lowercase hex.
For stdlib `logging`, `install_logging` puts a `TraceIdsFilter` on its handler; a plugin that
configures its own handlers adds one to them. For structlog, `add_trace_ids` is a processor;
for loguru, `loguru_trace_ids` is a patcher.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from .tracing import current_trace_ids, tracing_requested

__all__ = ["JsonLinesHandler", "TraceIdsFilter", "add_trace_ids", "install_logging", "loguru_trace_ids"]


class TraceIdsFilter(logging.Filter):
    """Gives every record it sees ``trace_id`` and ``span_id`` attributes (``""`` when untraced).

    Put it on a handler (``handler.addFilter(TraceIdsFilter())``): a handler's filters see the
    records of every logger that reaches it. Then ``%(trace_id)s`` works in a format string.
    It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_trace_ids()
        record.trace_id, record.span_id = ids if ids is not None else ("", "")
        return True


def add_trace_ids(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: adds ``trace_id`` and ``span_id`` to the event while traced
    (nothing when untraced; values the event already has are kept)."""
    ids = current_trace_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


def loguru_trace_ids(record: Any) -> None:
    """A loguru patcher: sets ``record["extra"]["trace_id"]`` and ``["span_id"]`` (``""``
    when untraced), for ``logger.configure(patcher=loguru_trace_ids)`` or ``logger.patch(...)``."""
    ids = current_trace_ids()
    extra = record["extra"]
    extra["trace_id"], extra["span_id"] = ids if ids is not None else ("", "")


class JsonLinesHandler(logging.Handler):
    """Writes each record as one JSON object per line: ``level``, ``logger``, ``message``,
    for exceptions ``exc`` (the formatted traceback) and, when the record has them (see
    `TraceIdsFilter`), ``trace_id`` and ``span_id``.

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
            trace_id = getattr(record, "trace_id", "")
            if trace_id:
                line["trace_id"] = trace_id
                line["span_id"] = getattr(record, "span_id", "")
            stream = self._stream or sys.stderr
            stream.write(json.dumps(line, ensure_ascii=False) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def install_logging(level: str | int = "INFO") -> None:
    """Send the root logger's records to stderr as JSON lines.

    A plugin that configured logging itself (the root logger has handlers) is left alone.
    While tracing is on (``PLUGWIRE_TRACING=1``) the handler has a `TraceIdsFilter`, so each
    line carries the ids of the span (or traceparent) it was logged in.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = JsonLinesHandler()
        if tracing_requested():
            handler.addFilter(TraceIdsFilter())
        root.addHandler(handler)
    root.setLevel(level)
