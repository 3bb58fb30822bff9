"""Starting and stopping the child processes that baselines talk to."""

from __future__ import annotations

import contextlib
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .._model import Env

__all__ = ["CHILDREN", "SMALL", "frame", "payload", "server_child", "stop"]

CHILDREN = Path(__file__).resolve().parent.parent / "children"
SMALL = 100
"""Bytes of the "small" payload every peer echoes (about one typed request)."""


def payload(size: int) -> bytes:
    """A deterministic payload of `size` bytes."""
    return bytes(i % 251 for i in range(size))


def frame(body: bytes) -> bytes:
    """4-byte big-endian length, then the body: the framing of plugwire's wire protocol."""
    return struct.pack(">I", len(body)) + body


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Close the child's stdin (every child here exits on EOF), wait, kill if it will not go."""
    for stream in (proc.stdin,):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@contextlib.contextmanager
def server_child(env: Env, script: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start `children/<script>`, wait for the line it prints when ready, stop it on exit."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILDREN / script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env.child_env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError(f"{script} exited before it was ready (status {proc.wait()})")
        yield proc, line
    finally:
        stop(proc)
