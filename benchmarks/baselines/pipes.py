"""The floors: length-prefixed frames over subprocess pipes, blocking and asyncio.

- The blocking floor: raw `os.read`/`os.write` on both ends (`children/echo_pipe.py`).
- The asyncio floor, issue 3's baseline (a), "a bare asyncio echo over subprocess pipes": the
  host writes and reads through `asyncio.create_subprocess_exec`'s streams, and the echo
  child is asyncio too (`children/echo_asyncio.py`), what someone writes by hand with asyncio
  on both ends and no plugwire code.
- The asyncio host over the blocking child: stricter than (a), since a plugin process built on
  an event loop cannot answer as cheaply as a blocking loop of reads and writes; shown next
  to (a) so both comparisons stay visible.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial

from .._model import Env, Op, Side
from ._proc import CHILDREN, SMALL, frame, payload, stop

__all__ = [
    "ASYNCIO_FLOOR",
    "ASYNCIO_FLOOR_64K",
    "ASYNCIO_FLOOR_X64",
    "ASYNCIO_HOST_FLOOR",
    "ASYNCIO_HOST_FLOOR_X64",
    "PIPES_FLOOR",
    "asyncio_pipes",
    "blocking_pipes",
]

_ECHO = str(CHILDREN / "echo_pipe.py")
_ASYNCIO_ECHO = str(CHILDREN / "echo_asyncio.py")


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError("the echo child closed its stdout")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@asynccontextmanager
async def blocking_pipes(env: Env, size: int = SMALL) -> AsyncIterator[Op]:
    """One round trip = write one frame, read the echoed frame, both blocking."""
    # A blocking child on purpose: this floor measures blocking I/O, and nothing else runs meanwhile.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env.child_env
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    out_fd, in_fd = proc.stdin.fileno(), proc.stdout.fileno()
    message = frame(payload(size))

    def round_trip() -> None:
        _write_all(out_fd, message)
        _read_exact(in_fd, len(message))

    try:
        _write_all(out_fd, message)
        if _read_exact(in_fd, len(message)) != message:
            raise RuntimeError("the echo child answered with different bytes")
        yield round_trip
    finally:
        stop(proc)


@asynccontextmanager
async def asyncio_pipes(
    env: Env, size: int = SMALL, in_flight: int = 1, *, blocking_child: bool = False, wrapper: Sequence[str] = ()
) -> AsyncIterator[Op]:
    """`in_flight` frames written, then as many read back, through asyncio's subprocess streams,
    to the asyncio echo child (or the blocking one); `wrapper` is put before the child's
    command (`benchmarks/instructions.py` runs it under valgrind)."""
    proc = await asyncio.create_subprocess_exec(
        *wrapper,
        sys.executable,
        _ECHO if blocking_child else _ASYNCIO_ECHO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env.child_env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    writer, reader = proc.stdin, proc.stdout
    message = frame(payload(size))

    async def round_trip() -> None:
        writer.write(message)
        await writer.drain()
        header = await reader.readexactly(4)
        await reader.readexactly(int.from_bytes(header, "big"))

    async def pipelined() -> None:
        for _ in range(in_flight):
            writer.write(message)
        await writer.drain()
        for _ in range(in_flight):
            header = await reader.readexactly(4)
            await reader.readexactly(int.from_bytes(header, "big"))

    try:
        writer.write(message)
        if await reader.readexactly(len(message)) != message:
            raise RuntimeError("the echo child answered with different bytes")
        yield round_trip if in_flight == 1 else pipelined
    finally:
        writer.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


PIPES_FLOOR = Side("blocking pipes (floor)", blocking_pipes)
ASYNCIO_FLOOR = Side("bare asyncio echo (asyncio floor)", asyncio_pipes)
ASYNCIO_FLOOR_64K = Side("bare asyncio echo, 64 KiB", partial(asyncio_pipes, size=64 * 1024))
ASYNCIO_FLOOR_X64 = Side("bare asyncio echo, 64 in flight", partial(asyncio_pipes, in_flight=64), per_call=64)
ASYNCIO_HOST_FLOOR = Side("asyncio host, blocking echo child", partial(asyncio_pipes, blocking_child=True))
ASYNCIO_HOST_FLOOR_X64 = Side(
    "asyncio host, blocking echo child, 64 in flight",
    partial(asyncio_pipes, in_flight=64, blocking_child=True),
    per_call=64,
)
