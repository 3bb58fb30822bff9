"""Spawn, watch and stop one plugin process.

The process gets a scrubbed environment, its own process group and (on Linux) a
parent-death signal, so a host killed with SIGKILL leaves no plugin behind. Its exit is
seen through a pidfd (not through end-of-file, which a grandchild holding stdout would
delay forever); the group is killed before the leader is reaped, so leftovers die with it
and the group id cannot be reused in between. Every process is reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from .._errors import ErrorCode, ProcessError
from .._protocol import handshake_env
from ._program import EXEC_FAILED_STATUSES, find_program, launch_failed
from ._stderr import StderrForwarder

__all__ = ["ENV_ALLOWLIST", "PluginProcess", "describe_status", "scrubbed_env"]

ENV_ALLOWLIST: Final = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "PLUGWIRE_FAST_PATHS")
_PR_SET_PDEATHSIG: Final = 1


def scrubbed_env(configured: Mapping[str, str], name: str, *, protocol: bool = True) -> dict[str, str]:
    """The plugin's environment: allowlisted host variables, its configured `env`, and the
    protocol variables (`protocol=False`: without plugwire's, for a plugin that speaks
    another protocol). Nothing else of the host's environment (tokens, keys) reaches it."""
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWLIST or k.startswith("LC_")}
    env.update(configured)
    if protocol:
        env.update(handshake_env(name))
    return env


def describe_status(returncode: int) -> str:
    """'exit status 3' or 'killed by SIGKILL'."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()
# setpriv (util-linux) arms the parent-death signal and execs the plugin, so no Python code
# runs between fork and exec: Popen can then use vfork, which is faster and does not run
# other libraries' fork handlers in the child (grpc's abort there, now and then).
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
# How the launcher's own messages start (the only stderr line it writes: its exec failed).
_LAUNCHER_PREFIX = f"{os.path.basename(_SETPRIV)}: " if _SETPRIV is not None else None


def _launch_argv(argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
    """The argv to exec and the pre-exec hook that give the plugin a parent-death signal."""
    if _SETPRIV is not None:
        return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv], None
    return list(argv), _child_setup(os.getpid())


def _child_setup(parent: int) -> Callable[[], None] | None:
    if _prctl is None:
        return None
    prctl = _prctl

    def setup() -> None:  # runs in the child between fork and exec: keep it tiny
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the host died before the signal was armed
            os._exit(1)

    return setup


class PluginProcess:
    """One running plugin process, its stderr forwarder and its exit.

    Use `spawn()`; `exited` resolves to the return code once the process is reaped.
    """

    def __init__(self, popen: subprocess.Popen[bytes], stderr: StderrForwarder, program: str = "") -> None:
        self.popen = popen
        self.pid = popen.pid
        self.program = program  # the plugin's file, as found on PATH / in cwd
        self.stderr = stderr
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.exited: asyncio.Future[int] = loop.create_future()
        self._pidfd = -1
        self._stderr_transport: asyncio.BaseTransport | None = None

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str],
        cwd: str | None,
        channel: socket.socket | None,
        stderr_line_limit: int = 8192,
        stderr_tail: int = 20,
        stderr_forwarder: type[StderrForwarder] = StderrForwarder,
    ) -> PluginProcess:
        """Start `argv` with `channel` as its stdin and stdout (None: stdin from /dev/null,
        stdout a pipe, `popen.stdout`, for a plugin that prints its address there).

        Raises:
            ProcessError: The executable could not be started (1901): missing, not
                executable, not on PATH, a script whose interpreter is missing, or a Python
                interpreter's script that is missing.
        """
        program = find_program(argv[0] if argv else "", name=name, env=env, cwd=cwd, args=argv[1:])
        command, child_setup = _launch_argv(argv)
        try:
            # S603: argv comes from the plugin config. ASYNC220: Popen returns once exec is done
            # (asyncio's own subprocess support calls it the same way); exit is watched via pidfd.
            popen = subprocess.Popen(  # noqa: S603, ASYNC220
                command,
                stdin=channel.fileno() if channel is not None else subprocess.DEVNULL,
                stdout=channel.fileno() if channel is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env),
                cwd=cwd or None,
                close_fds=True,
                process_group=0,
                preexec_fn=child_setup,  # noqa: PLW1509 - only prctl, and only without setpriv
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise ProcessError(
                f"cannot start plugin {name!r} ({argv[0] if argv else '?'}): {exc}",
                code=ErrorCode.PROCESS_SPAWN_FAILED,
                plugin=name,
                retryable=False,
            ) from exc
        forwarder = stderr_forwarder(
            name, max_line=stderr_line_limit, tail_lines=stderr_tail, launcher_prefix=_LAUNCHER_PREFIX
        )
        process = cls(popen, forwarder, program)
        assert popen.stderr is not None
        process._watch()  # before any await: a cancelled spawn must still see the exit it causes
        try:
            process._stderr_transport, _ = await process._loop.connect_read_pipe(lambda: forwarder, popen.stderr)
        except BaseException:
            process.kill()
            if process._stderr_transport is None:
                popen.stderr.close()
            if popen.stdout is not None:
                popen.stdout.close()
            await asyncio.shield(process.exited)
            raise
        return process

    # ------------------------------------------------------------------- exit
    def _watch(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # not Linux >= 5.3: wait (without reaping) in a thread
            threading.Thread(target=self._wait_in_thread, name=f"plugwire-wait-{self.pid}", daemon=True).start()
            return
        self._loop.add_reader(self._pidfd, self._on_exit)

    def _wait_in_thread(self) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._on_exit)

    def _on_exit(self) -> None:
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        # The leader is a zombie now, so its pid (the group id) cannot be reused yet:
        # kill whatever it left in its group, then reap it.
        self._signal_group(signal.SIGKILL)
        try:
            _, status = os.waitpid(self.pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere
            returncode = self.popen.returncode if self.popen.returncode is not None else -1
        self.popen.returncode = returncode
        self.stderr.drain_now()
        if self._stderr_transport is not None:
            self._stderr_transport.close()
        if not self.exited.done():
            self.exited.set_result(returncode)

    # ------------------------------------------------------------------- stop
    @property
    def running(self) -> bool:
        return not self.exited.done()

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group now (the exit is still observed and reaped)."""
        if self.running:
            self._signal_group(signal.SIGKILL)

    async def stop(self, grace: float, kill_after: float, request_shutdown: Callable[[], Any] | None = None) -> int:
        """Stop the process: ask it (`request_shutdown`, e.g. a shutdown frame), wait
        `grace`, SIGTERM its group, wait `kill_after`, SIGKILL its group. Returns its code."""
        if self.running and request_shutdown is not None:
            with contextlib.suppress(Exception):
                request_shutdown()
            await self._wait(grace)
        if self.running:
            self._signal_group(signal.SIGTERM)
            await self._wait(kill_after)
        if self.running:
            self._signal_group(signal.SIGKILL)
        return await asyncio.shield(self.exited)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await asyncio.shield(self.exited)

    def stderr_tail(self) -> str:
        """The last stderr lines, for error messages."""
        return "\n".join(self.stderr.tail)

    def launch_error(self) -> ProcessError | None:
        """For a process that exited: the 1901 error when the launcher failed, so the
        plugin's file never ran (an exec failure `find_program` could not foresee, e.g. a
        script's interpreter that is itself a script with a missing interpreter), else None."""
        reason = self.stderr.launcher_message
        if reason is None:
            return None
        return launch_failed(self.stderr.name, self.program, reason, self.popen.returncode in EXEC_FAILED_STATUSES)
