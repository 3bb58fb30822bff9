"""A plugin's stderr, forwarded line by line as log records under `plugwire.plugin.<name>`.

Bounded in every direction: a line longer than the limit is cut and marked, the partial
line buffered is never longer than the limit, a flood is rate-limited (with a count of
what was suppressed), and only the last few lines are kept for crash reports.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
from typing import Final, cast

__all__ = ["StderrForwarder"]

TRUNCATED_MARKER: Final = "…[truncated {} bytes]"


class StderrForwarder(asyncio.Protocol):
    """Turns a plugin's stderr into log records.

    JSON lines written by the SDK's handler (``{"level", "logger", "message"}``) become
    records at their level (with ``trace_id`` and ``span_id`` attributes when the line has
    them: logged in a traced call); any other line becomes an INFO record.

    Args:
        name: The plugin's name; records go to the logger `plugwire.plugin.<name>`.
        max_line: Bytes kept of one line; the rest is dropped and counted in a marker.
        tail_lines: How many recent lines to keep for crash reports.
        burst: Lines forwarded at once before rate limiting starts.
        rate: Lines per second forwarded once the burst is spent.
        launcher_prefix: How the launcher's messages start (`"setpriv: "`): a first line
            that starts so is the launcher's, not the plugin's. It is kept, without the
            prefix, in `launcher_message`, and neither logged nor put in the tail.
    """

    def __init__(
        self,
        name: str,
        *,
        max_line: int = 8192,
        tail_lines: int = 20,
        burst: int = 1000,
        rate: float = 200.0,
        launcher_prefix: str | None = None,
    ) -> None:
        self.name = name
        self.logger = logging.getLogger(f"plugwire.plugin.{name}")
        self._launcher_prefix = launcher_prefix
        self.launcher_message: str | None = None
        self.max_line = max_line
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._partial = bytearray()
        self._dropping = 0  # bytes dropped from the current over-long line
        self._tokens = float(burst)
        self._burst = float(burst)
        self._rate = rate
        self._last_refill = time.monotonic()
        self.suppressed = 0
        self.peak_buffered = 0
        self.eof = asyncio.get_running_loop().create_future()
        self._transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.ReadTransport, transport)  # uvloop's do not subclass the ABC

    def data_received(self, data: bytes) -> None:
        start = 0
        while True:
            newline = data.find(b"\n", start)
            chunk = data[start:] if newline < 0 else data[start:newline]
            self._append(chunk)
            if newline < 0:
                break
            self._end_line()
            start = newline + 1

    def eof_received(self) -> bool:
        self.flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.flush()
        if not self.eof.done():
            self.eof.set_result(None)

    def drain_now(self) -> None:
        """Read what the (exited) plugin left in the pipe, without waiting, then flush.

        Used at exit: a grandchild may hold the pipe open, so end-of-file may never come.
        """
        transport = self._transport
        pipe = transport.get_extra_info("pipe") if transport is not None else None
        if pipe is not None and not transport.is_closing():  # type: ignore[union-attr]
            fd = pipe.fileno()
            for _ in range(64):  # at most 64 reads: a live writer cannot keep us here
                try:
                    data = os.read(fd, 65536)
                except (BlockingIOError, InterruptedError, OSError):
                    break
                if not data:
                    break
                self.data_received(data)
        self.flush()

    def flush(self) -> None:
        """Emit a pending partial line."""
        if self._partial or self._dropping:
            self._end_line()

    # ------------------------------------------------------------------ lines
    def _append(self, chunk: bytes) -> None:
        room = self.max_line - len(self._partial)
        if len(chunk) > room:
            self._partial += chunk[: max(room, 0)]
            self._dropping += len(chunk) - max(room, 0)
        else:
            self._partial += chunk
        self.peak_buffered = max(self.peak_buffered, len(self._partial))

    def _end_line(self) -> None:
        text = self._partial.decode("utf-8", "replace").rstrip("\r")
        if self._dropping:
            text += TRUNCATED_MARKER.format(self._dropping)
        self._partial = bytearray()
        self._dropping = 0
        if self._launcher_prefix is not None:  # the first line only
            prefix, self._launcher_prefix = self._launcher_prefix, None
            if text.startswith(prefix):
                self.launcher_message = text[len(prefix) :]
                return
        self.tail.append(text)
        level, message, extra = self._parse(text)
        # Lines below the logger's level cost no rate-limit tokens: a plugin that logs at
        # DEBUG on every call must not make the host warn about lines nobody asked for.
        if self.logger.isEnabledFor(level) and self._allow():
            self.logger.log(level, "%s", message, extra=extra)

    def _allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last_refill) * self._rate)
        self._last_refill = now
        if self._tokens < 1.0:
            self.suppressed += 1
            return False
        self._tokens -= 1.0
        if self.suppressed:
            count, self.suppressed = self.suppressed, 0
            self.logger.warning("%d stderr lines suppressed (more than %g lines/s)", count, self._rate)
        return True

    def _parse(self, text: str) -> tuple[int, str, dict[str, object]]:
        """The level, message and record attributes of one line."""
        level = logging.INFO
        message = text
        extra: dict[str, object] = {}
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and "message" in parsed:
                found = logging.getLevelName(str(parsed.get("level", "INFO")).upper())
                level = found if isinstance(found, int) else logging.INFO
                message = str(parsed["message"])
                if parsed.get("exc"):
                    message += "\n" + str(parsed["exc"])
                extra["plugin_logger"] = str(parsed.get("logger", ""))
                if parsed.get("trace_id"):  # the plugin logged inside a traced call
                    extra["trace_id"] = str(parsed["trace_id"])
                    extra["span_id"] = str(parsed.get("span_id", ""))
        return level, message, extra
