"""The stdout of a Python plugin served to a go-plugin host: the handshake line, and nothing else.

go-plugin hosts read the plugin's stdout for one line, the handshake; a stray `print()` before
it would be read as the handshake and refused. So at start the real stdout is moved to a
private descriptor that only the handshake line is written to, and fd 1 (what `print()`,
`sys.stdout`, C code and child processes write to) becomes a pipe the plugin reads itself.
What arrives there is handed to a sink: the `GRPCStdio` stream of a newer go-plugin host, or
the log on stderr (a go-plugin 1.0.1 host has no stdio stream).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

from .hclog import STDERR_LOCK, hclog_line

__all__ = ["StdoutGuard", "stdout_to_log"]

_READ_SIZE = 64 * 1024


class StdoutGuard:
    """Owns the real stdout (for the handshake line) and the pipe fd 1 now points at."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._real = os.dup(1)
        read, write = os.pipe()
        os.dup2(write, 1)
        os.close(write)
        os.set_blocking(read, False)
        self._read: int | None = read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Callable[[bytes], None] = stdout_to_log
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:  # a print() reaches the host promptly, a line at a time
            reconfigure(line_buffering=True)

    def write_handshake(self, line: str) -> None:
        """Write the handshake line (and its newline) on the real stdout."""
        data = (line + "\n").encode()
        while data:
            written = os.write(self._real, data)
            data = data[written:]

    def attach(self, loop: asyncio.AbstractEventLoop, sink: Callable[[bytes], None]) -> None:
        """From now on, hand what is written to fd 1 to `sink`, on `loop`."""
        assert self._read is not None
        self._sink = sink
        self._loop = loop
        loop.add_reader(self._read, self._readable)

    def _readable(self) -> None:
        self._drain()

    def _drain(self) -> None:
        while self._read is not None:
            try:
                chunk = os.read(self._read, _READ_SIZE)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._sink(chunk)

    def release(self) -> None:
        """Hand on what is still in the pipe, then point fd 1 at stderr (output written while
        the interpreter exits goes to the log) and close the pipe; idempotent."""
        if self._read is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._read)
        sys.stdout.flush()
        self._sink = stdout_to_log
        self._drain()
        stdout_to_log(b"", final=True)
        os.dup2(2, 1)
        os.close(self._read)
        self._read = None


_partial = bytearray()


def stdout_to_log(chunk: bytes, *, final: bool = False) -> None:
    """Write stdout's complete lines to stderr as hclog debug lines (module `stdout`), which a
    go-plugin host logs under the plugin's name. A line without its end waits for the rest
    (or for `final`), so it is never cut by a log line written in between."""
    _partial.extend(chunk)
    *lines, rest = _partial.split(b"\n")
    if final and rest:
        lines.append(rest)
        rest = bytearray()
    _partial[:] = rest
    if not lines:
        return
    text = "".join(
        hclog_line("debug", line.decode(errors="replace").rstrip("\r"), module="stdout") + "\n" for line in lines
    )
    with STDERR_LOCK:
        sys.stderr.write(text)
        sys.stderr.flush()
