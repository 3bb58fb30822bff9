"""A go-plugin plugin's stderr as log records: hclog's JSON lines at their level.

go-plugin plugins log through hclog; with `JSONFormat` each line is an object with `@level`
(`trace`, `debug`, `info`, `warn`, `error`), `@message`, `@timestamp`, `@module` and the
call's key/value pairs. Such a line becomes a record at the matching Python level (trace
at `TRACE`, 5, below DEBUG), its message followed by its pairs as `key=value`. Any other
line (a Go panic, a `fmt.Fprintln(os.Stderr, ...)`) is logged as it is: at the level of a
leading `[TRACE]`/`[DEBUG]`/`[INFO]`/`[WARN]`/`[ERROR]` tag as hclog's text format writes
it, else at INFO.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from ._stderr import StderrForwarder

__all__ = ["HCLOG_LEVELS", "TRACE", "HclogForwarder", "parse_hclog"]

TRACE: Final = 5
"""The Python level of hclog's `trace` (below DEBUG, 10)."""

HCLOG_LEVELS: Final = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_TAGS: Final = {f"[{name.upper()}]": level for name, level in HCLOG_LEVELS.items() if name != "warning"}
_RESERVED: Final = frozenset({"@level", "@message", "@timestamp", "@module", "@caller"})


class HclogForwarder(StderrForwarder):
    """A `StderrForwarder` that reads hclog's JSON lines (see the module's docstring).

    Records go to `plugwire.plugin.<name>` with the attributes `plugin_logger` (hclog's
    `@module`) and `hclog_fields` (the line's key/value pairs, a dict).
    """

    def _parse(self, text: str) -> tuple[int, str, dict[str, object]]:
        return parse_hclog(text)


def parse_hclog(text: str) -> tuple[int, str, dict[str, object]]:
    """The level, message and record attributes of one stderr line."""
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "@message" in parsed:
            level = HCLOG_LEVELS.get(str(parsed.get("@level", "info")).lower(), logging.INFO)
            fields = {key: value for key, value in parsed.items() if key not in _RESERVED}
            message = str(parsed["@message"])
            if fields:
                message += ": " + " ".join(f"{key}={_shown(value)}" for key, value in fields.items())
            return level, message, {"plugin_logger": str(parsed.get("@module", "")), "hclog_fields": fields}
    tag, _, rest = text.partition(" ")
    tagged = _TAGS.get(tag)
    if tagged is not None:
        return tagged, rest.lstrip(" "), {}
    return logging.INFO, text, {}


def _shown(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)
