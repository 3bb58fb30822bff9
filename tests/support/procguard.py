"""Leak checks for tests that start real processes: no child process and no file
descriptor may outlive a test. Also helpers to point a manager at the test plugins."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import plugwire
from plugwire._transports.subprocess import SubprocessOptions

PLUGINS = Path(__file__).resolve().parent / "plugins"
SRC = Path(__file__).resolve().parents[2] / "src"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"


ReqT = TypeVar("ReqT")
RespT = TypeVar("RespT")


def manager_for(request_type: type[ReqT], response_type: type[RespT]) -> plugwire.AsyncPluginManager[ReqT, RespT]:
    """An `AsyncPluginManager` typed for the checker (its constructor also takes non-class types)."""
    return plugwire.AsyncPluginManager(request_type, response_type)


def plugin_env(**extra: str) -> dict[str, str]:
    """The configured env a test plugin needs: this worktree's sources on PYTHONPATH, and
    coverage's variables when the suite runs under coverage (so plugin code is measured), and
    PLUGWIRE_LOOP when set (so the suite can run its plugins on uvloop), and
    PLUGWIRE_FAST_PATHS (so plain-path runs reach plugins started by hand too)."""
    names = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START", "PLUGWIRE_LOOP", "PLUGWIRE_FAST_PATHS")
    passed = {k: v for k, v in os.environ.items() if k in names}
    return {**passed, "PYTHONPATH": str(SRC), **extra}


def python_plugin(script: str, *args: str, options: SubprocessOptions | None = None, **env: str) -> Any:
    """A subprocess source running tests/support/plugins/<script> with this interpreter."""
    path = script if os.path.isabs(script) else str(PLUGINS / script)
    return plugwire.subprocess(sys.executable, path, *args, env=plugin_env(**env), options=options)


def child_pids() -> set[int]:
    """Pids whose parent is this process (zombies included: they are not reaped yet). Read
    from each thread's /proc children list (every test calls this: a scan of all of /proc costs
    ~10 ms on a busy machine); the scan where the kernel has no such list."""
    found: set[int] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                found.update(map(int, Path(f"/proc/self/task/{tid}/children").read_text().split()))
    except OSError:
        return _scanned_child_pids()
    return found


def _scanned_child_pids() -> set[int]:
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == me:
            found.add(int(entry))
    return found


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def open_fds() -> set[int]:
    """This process's open descriptors. The listing reads /proc/self/fd through a descriptor
    of its own, closed again by the time it returns: that one is left out."""
    return {fd for fd in map(int, os.listdir("/proc/self/fd")) if _is_open(fd)}


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll `predicate` (process exit has no event to wait on from a test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


async def eventually(predicate: Any, timeout: float = 10.0) -> None:
    """Await `predicate()` for facts no event reports (bytes a child wrote to a pipe)."""
    import asyncio

    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - no event exists for bytes the OS moves between processes
            await asyncio.sleep(0.01)


def leftover_children(before: set[int], timeout: float = 5.0) -> set[int]:
    """Child processes started since `before` that are still there after `timeout` (a child
    being stopped gets that long to exit and be reaped). Every test is checked with it
    (tests/conftest.py); `no_leaks` adds the descriptors."""
    if not (child_pids() - before):
        return set()
    wait_until(lambda: not (child_pids() - before), timeout)
    return child_pids() - before


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a child process or an open file descriptor behind."""
    children = child_pids()
    fds = open_fds()
    yield
    left = leftover_children(children)
    assert not left, f"leaked child processes: {left}"
    # Give just-closed transports a moment to release their descriptors.
    wait_until(lambda: not _new_fds(fds), timeout=2.0)
    details = _new_fds(fds)
    assert not details, f"leaked file descriptors: {details}"


def _new_fds(before: set[int]) -> dict[int, str]:
    """Descriptors opened since `before` and still open, with what they point at. One that
    closes between listing and `readlink` is not a leak: another thread (gRPC's pollers, a
    finishing transport) opened it for a moment."""
    described = {fd: _describe_fd(fd) for fd in open_fds() - before}
    details = {fd: what for fd, what in described.items() if what is not None}
    if "grpc" in sys.modules:
        # grpc's core keeps process-wide eventfds for its pollers and opens them lazily on
        # its own threads (e.g. after an earlier test module used gRPC); they are not ours.
        details = {fd: what for fd, what in details.items() if what != "anon_inode:[eventfd]"}
    return details


def _describe_fd(fd: int) -> str | None:
    """What `fd` points at, or None if it is no longer open."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"? ({exc.strerror})"


class HandDriver:
    """Drives a plugin process with hand-built JSON frames (struct + json, no plugwire code),
    exactly as docs/protocol.md describes them."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cookie: bool = True) -> None:
        import socket
        import subprocess

        self.sock, child = socket.socketpair()
        full_env = {"PATH": os.environ.get("PATH", ""), **plugin_env(), **(env or {})}
        if cookie:
            full_env.update(
                PLUGWIRE_MAGIC_COOKIE="8c2f9b1e4d7a4f6b-plugwire",
                PLUGWIRE_PROTOCOL_VERSIONS="1",
                PLUGWIRE_PLUGIN_NAME="hand",
            )
        self.proc = subprocess.Popen(
            argv, stdin=child.fileno(), stdout=child.fileno(), stderr=subprocess.PIPE, env=full_env
        )
        child.close()
        self.sock.settimeout(10)

    def send(self, message: dict[str, Any]) -> None:
        import json
        import struct

        body = json.dumps(message).encode()
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> dict[str, Any]:
        import json
        import struct

        (size,) = struct.unpack(">I", self._exact(4))
        result: dict[str, Any] = json.loads(self._exact(size))
        return result

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError(f"connection closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def hello(self, codecs: tuple[str, ...] = ("json",), **extra: Any) -> dict[str, Any]:
        self.send({"type": "hello", "versions": [1], "codecs": list(codecs), "max_frame": 1 << 20, **extra})
        return self.recv()

    def wait(self, timeout: float = 10.0) -> int:
        code: int = self.proc.wait(timeout)
        return code

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        text: str = self.proc.stderr.read().decode()
        return text

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
