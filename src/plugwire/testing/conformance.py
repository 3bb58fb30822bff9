"""`check_plugin(command)`: run a plugin executable through protocol v1 and report what it
gets wrong, for plugin authors in any language (docs/protocol.md is the reference).

Nothing here restates what the host requires: every byte the plugin writes is judged by the
host's own code. Its stdout is split into frames by the host's frame reader (`FrameReader`:
its limits, its errors), its `hello` by the check the host makes of it
(`_transports/_hello.py`, which decodes with the `PluginHello` and `PluginInfo` structs), every
later frame by the host's envelope decoder (`_protocol/messages.py`, `PluginMessage`), a health
answer as the host reads it (`HealthStatus`). The host's `hello` is the one the subprocess
transport sends with its default options, and the plugin gets the environment the host gives
it (`scrubbed_env`). A check that fails on something the host refuses names the error code the
host raises (`Finding.code`).
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .._errors import ErrorCode, PluginError, ProtocolError
from .._models import HealthStatus, Status
from .._protocol import (
    COOKIE_ENV,
    NAME_ENV,
    SUPPORTED_VERSIONS,
    VERSIONS_ENV,
    EnvelopeCodec,
    FrameReader,
    HostHello,
    PluginHello,
    PluginMessage,
    handshake_frame,
)
from .._transports._hello import check_reply
from .._transports._lost import junk_error
from .._transports._process import scrubbed_env
from .._transports.subprocess import SubprocessOptions
from ._report import ConformanceReport, Finding, code_label

__all__ = ["ConformanceReport", "Finding", "check_plugin"]

_NAME = "conformance"
_HOST = SubprocessOptions()
"""The subprocess transport's defaults: the codecs the host offers and the largest frame it reads."""


class _Broken(Exception):
    """The plugin did something that ends the current check (`error`: the host's refusal of it)."""

    def __init__(self, message: str, error: PluginError | None = None) -> None:
        super().__init__(message)
        self.error = error


class _Frames(FrameReader):
    """The host's frame reader over the plugin's stdout, keeping each frame for the checks."""

    def __init__(self, max_frame: int) -> None:
        super().__init__(max_frame)
        self.ready: deque[bytes] = deque()
        self.error: ProtocolError | None = None

    def frame_received(self, envelope: memoryview) -> None:
        self.ready.append(bytes(envelope))

    def frame_error(self, error: ProtocolError) -> None:
        self.error = error


class _Session:
    """One plugin process on a socket pair, driven with blocking, deadline-bounded I/O."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], timeout: float, cookie: bool = True) -> None:
        self.timeout = timeout
        self.sock, child = socket.socketpair()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close(), after the process
        full_env = scrubbed_env(env, _NAME)  # what the host gives a plugin
        if not cookie:
            for name in (COOKIE_ENV, VERSIONS_ENV, NAME_ENV):
                full_env.pop(name, None)
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - the command under test
                list(argv),
                stdin=child.fileno(),
                stdout=child.fileno(),
                stderr=self.stderr,
                env=full_env,
                start_new_session=True,
            )
        except BaseException:
            self.sock.close()
            self.stderr.close()
            raise
        finally:
            child.close()
        self.frames = _Frames(_HOST.max_frame)
        self.codec = "json"
        self.max_frame = _HOST.max_frame  # the plugin's limit, once it has said it
        self._host: EnvelopeCodec | None = None  # the host's decoder of the plugin's frames
        #: A check ended on something a host breaks the connection for: the next one needs a new process.
        self.broken = False

    # ----------------------------------------------------------------- frames
    def send(self, message: Mapping[str, Any]) -> None:
        encode = msgspec.json.encode if self.codec == "json" else msgspec.msgpack.encode
        body = encode(message)
        self.send_raw(len(body).to_bytes(4, "big") + body)

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Broken(f"could not write to the plugin: {exc}") from exc

    def next_frame(self) -> bytes:
        """The next envelope the plugin wrote, split from its stdout as the host splits it."""
        frames = self.frames
        deadline = time.monotonic() + self.timeout
        while not frames.ready:
            if frames.error is not None:
                error = frames.error if self._host is not None else junk_error(frames.peek(64), _NAME)
                label = code_label(error.code)
                raise _Broken(f"the host refuses what the plugin wrote with error {label}: {error.message}", error)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise _Broken(f"no answer within {self.timeout:g}s (got {frames.buffered} bytes: {frames.peek(32)!r})")
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:  # a reset: the plugin exited with our frame unread
                raise _Broken(f"the plugin closed stdout ({self.describe_exit()}): {exc}") from exc
            if not chunk:
                truncated = frames.truncation_error()
                if truncated is not None:
                    label = code_label(truncated.code)
                    words = f"the plugin closed stdout ({self.describe_exit()}); the host raises {label}"
                    raise _Broken(f"{words}: {truncated.message}", truncated)
                raise _Broken(f"the plugin closed stdout ({self.describe_exit()})")
            frames.feed(chunk)
        return frames.ready.popleft()

    def recv(self) -> dict[str, Any]:
        """The next envelope, checked by the host's decoder, as plain data."""
        body = self.next_frame()
        assert self._host is not None  # after the handshake
        try:
            self._host.decode(body)
        except ProtocolError as exc:
            plain = _plain(body, self.codec)
            raise _Broken(
                f"the host refuses this frame with error {code_label(exc.code)} ({exc.message}): it breaks the "
                f"connection, the calls in flight fail with {code_label(ErrorCode.OUTCOME_UNKNOWN)} and the plugin "
                f"is restarted; frame {plain!r:.160}",
                exc,
            ) from None
        value: dict[str, Any] = _plain(body, self.codec)
        return value

    def hello(self) -> dict[str, Any]:
        """Send the host's `hello`; the plugin's answer, as the host accepts it, or `_Broken`."""
        offered: list[str] = list(_HOST.codecs)
        hello = HostHello(versions=list(SUPPORTED_VERSIONS), codecs=offered, max_frame=_HOST.max_frame)
        self.send_raw(handshake_frame(hello))
        body = self.next_frame()
        verdict = check_reply(memoryview(body), offered, _NAME, lambda: junk_error(body[:64], _NAME))
        if not isinstance(verdict, PluginHello):
            words = f"the host refuses this hello with error {code_label(verdict.code)}: {verdict.message}"
            raise _Broken(words, verdict)
        self.codec = verdict.codec
        self.max_frame = verdict.max_frame
        self._host = EnvelopeCodec(self.codec, PluginMessage)  # type: ignore[arg-type]  # (one it offered)
        reply: dict[str, Any] = msgspec.json.decode(body)
        return reply

    def answers(self, count: int) -> list[dict[str, Any]]:
        return [self.recv() for _ in range(count)]

    def available(self) -> bytes:
        """Bytes the plugin wrote and nobody read yet (up to 60), for messages."""
        with contextlib.suppress(OSError):
            if select.select([self.sock], [], [], 0.05)[0]:
                return self.sock.recv(60)
        return b""

    # ---------------------------------------------------------------- process
    def wait(self, seconds: float) -> int | None:
        try:
            return self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def describe_exit(self) -> str:
        code = self.proc.poll()
        return "still running" if code is None else f"exit status {code}"

    def stderr_tail(self) -> str:
        self.stderr.seek(0)
        lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(lines[-3:])

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
        self.proc.wait()
        self.stderr.close()


def _plain(body: bytes, codec: str) -> Any:
    """An envelope as plain data, for the checks' own questions (ids, types); the host's decoder
    has the say on whether it is valid."""
    try:
        return msgspec.json.decode(body) if codec == "json" else msgspec.msgpack.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return body[:64]


def check_plugin(
    command: str | Sequence[str],
    *,
    request: Any = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> ConformanceReport:
    """Run a plugin executable through every part of protocol v1 and report the results.

    Checks: it refuses to run without the magic cookie; the handshake (and a name in its
    info); a call (with an unknown envelope field); concurrent calls matched by id; an unknown
    method; a passed deadline; cancellation; health; an oversized frame; shutdown; end of input.

    Args:
        command: The plugin command, as a list or a shell-style string.
        request: A valid request payload for its `call` (default: an empty map).
        env: Extra environment variables for the plugin.
        timeout: Seconds to wait for each answer.

    Returns:
        A `ConformanceReport`; `str(report)` is a readable summary, `report.ok` the verdict.

    Raises:
        OSError: The command cannot be started.
    """
    argv = tuple(shlex.split(command) if isinstance(command, str) else command)
    payload = {} if request is None else request
    extra = dict(env or {})
    findings: list[Finding] = [_check_no_cookie(argv, extra, timeout)]
    session = _Session(argv, extra, timeout)
    try:
        try:
            reply = session.hello()
        except _Broken as exc:
            findings.append(_broken("handshake", exc, f"; stderr: {session.stderr_tail() or '-'}"))
            return ConformanceReport(argv, tuple(findings))
        info = reply["info"]  # the host decoded it as a `PluginInfo`
        detail = f"answered hello: version {reply['version']}, codec {session.codec}, name {info['name']!r}"
        findings.append(Finding("handshake", True, "must", detail))
        named = bool(info["name"])
        findings.append(
            Finding(
                "info-name",
                named,
                "should",
                f"calls itself {info['name']!r}" if named else "info.name is empty: logs and errors cannot name it",
            )
        )
        checks = (_check_call, _check_concurrent_calls, _check_unknown_method, _check_deadline, _check_cancel)
        for check in (*checks, _check_health, _check_shutdown):
            if session.broken:  # as a host does after a broken connection: a new process
                session.close()
                session = _Session(argv, extra, timeout)
                try:
                    session.hello()
                except _Broken as exc:
                    findings.append(
                        _broken(_name_of(check), _Broken(f"restarted, the plugin failed: {exc}", exc.error))
                    )
                    session.broken = True
                    continue
            findings.append(_run(check, session, payload))
    finally:
        session.close()
    findings.append(_fresh(argv, extra, timeout, _check_oversized))
    findings.append(_fresh(argv, extra, timeout, _check_end_of_input))
    return ConformanceReport(argv, tuple(findings))


def _name_of(check: Any) -> str:
    return str(check.__name__).removeprefix("_check_").replace("_", "-")


def _broken(name: str, exc: _Broken, suffix: str = "") -> Finding:
    return Finding(name, False, "must", f"{exc}{suffix}", exc.error.code if exc.error is not None else 0)


def _run(check: Any, session: _Session, payload: Any) -> Finding:
    try:
        result: Finding = check(session, payload)
    except _Broken as exc:
        session.broken = True  # the connection cannot be trusted for the next check
        return _broken(_name_of(check), exc)
    return result


def _fresh(argv: tuple[str, ...], env: dict[str, str], timeout: float, check: Any) -> Finding:
    session = _Session(argv, env, timeout)
    try:
        try:
            session.hello()
        except _Broken as exc:
            return _broken(_name_of(check), _Broken(f"handshake: {exc}", exc.error))
        return _run(check, session, None)
    finally:
        session.close()


def _check_no_cookie(argv: tuple[str, ...], env: dict[str, str], timeout: float) -> Finding:
    session = _Session(argv, env, timeout, cookie=False)
    try:
        session.sock.shutdown(socket.SHUT_WR)  # a human at a terminal who typed nothing
        code = session.wait(timeout)
        stdout = session.available() if code is not None else b""
        told = session.stderr_tail()
    finally:
        session.close()
    if code is None:
        return Finding("no-cookie", False, "must", "started without the magic cookie, it kept running")
    if code == 0 or stdout:
        return Finding("no-cookie", False, "must", f"without the magic cookie it exited {code}, stdout {stdout!r:.60}")
    if not told:
        return Finding("no-cookie", False, "should", f"exited {code} without explaining why on stderr")
    return Finding("no-cookie", True, "must", f"exits {code} and says: {told[:100]}")


def _check_call(session: _Session, payload: Any) -> Finding:
    session.send({"type": "call", "id": 1, "method": "execute", "payload": payload, "x-future-field": True})
    reply = session.recv()
    if reply.get("id") != 1:
        return Finding("call", False, "must", f"expected the answer to id 1, got {reply!r:.200}")
    what = "a result" if reply["type"] == "result" else f"error {reply['code']}: {reply['message']}"
    return Finding("call", True, "must", f"answered id 1 with {what} (an unknown envelope field was ignored)")


def _check_concurrent_calls(session: _Session, payload: Any) -> Finding:
    ids = list(range(10, 18))
    for call_id in ids:
        session.send({"type": "call", "id": call_id, "method": "execute", "payload": payload})
    seen = sorted(r.get("id", -1) for r in session.answers(len(ids)))
    ok = seen == ids
    return Finding("concurrent-calls", ok, "must", f"8 pipelined calls answered once each: {seen}")


def _check_unknown_method(session: _Session, payload: Any) -> Finding:
    session.send({"type": "call", "id": 20, "method": "no-such-method", "payload": payload})
    reply = session.recv()
    wanted = ErrorCode.UNKNOWN_METHOD
    ok = reply.get("type") == "error" and reply.get("id") == 20 and reply.get("code") == wanted
    detail = f"answered error {code_label(wanted)}" if ok else f"expected error {wanted} for id 20, got {reply!r:.160}"
    return Finding("unknown-method", ok, "must", detail)


def _check_deadline(session: _Session, payload: Any) -> Finding:
    session.send({"type": "call", "id": 21, "method": "execute", "payload": payload, "ctx": {"deadline": 1.0}})
    reply = session.recv()
    wanted = ErrorCode.TIMEOUT
    ok = reply.get("id") == 21 and reply.get("type") == "error" and reply.get("code") == wanted
    detail = (
        f"a call whose deadline passed got error {code_label(wanted)}"
        if ok
        else f"a call whose deadline passed; expected error {wanted}, got {reply!r:.160}"
    )
    return Finding("deadline", ok, "should", detail)


def _check_cancel(session: _Session, payload: Any) -> Finding:
    session.send({"type": "call", "id": 30, "method": "execute", "payload": payload})
    session.send({"type": "cancel", "id": 30})
    session.send({"type": "cancel", "id": 999})
    session.send({"type": "health", "id": 31})
    for _ in range(2):
        reply = session.recv()
        if reply.get("id") == 31:
            return Finding(
                "cancel", True, "must", "cancel (also of an unknown id) is accepted; the plugin still answers"
            )
        if reply.get("id") != 30:
            return Finding("cancel", False, "must", f"unexpected frame after cancel: {reply!r:.160}")
    return Finding("cancel", False, "must", "no answer to health after cancel")


def _check_health(session: _Session, payload: Any) -> Finding:
    session.send({"type": "health", "id": 40})
    reply = session.recv()
    if reply.get("type") == "error" and reply.get("id") == 40:  # allowed: the host counts it as unhealthy
        detail = f"answered health with error {reply.get('code')}: the host counts the plugin unhealthy"
        return Finding("health", False, "should", detail, reply.get("code", 0))
    if reply.get("id") != 40:
        return Finding("health", False, "must", f"expected the answer to health id 40, got {reply!r:.160}")
    try:  # as the host reads it (`HostConnection.health`)
        status = msgspec.convert(reply.get("payload"), HealthStatus).status
    except msgspec.ValidationError as exc:
        statuses = [s.value for s in Status]
        return Finding.refused(
            "health",
            ProtocolError(f"invalid health answer: {exc}", code=ErrorCode.ENVELOPE_INVALID),
            f"expected a map with a status in {statuses}, got {reply.get('payload')!r:.100}",
        )
    return Finding("health", True, "must", f"reports {status.value!r}")


def _check_shutdown(session: _Session, payload: Any) -> Finding:
    session.send({"type": "shutdown", "grace": 1.0})
    code = session.wait(1.0 + session.timeout)
    if code is None:
        return Finding("shutdown", False, "must", "still running after shutdown and its grace period")
    return Finding("shutdown", code == 0, "must", f"exited with status {code} after shutdown (expected 0)")


def _check_oversized(session: _Session, payload: Any) -> Finding:
    session.send_raw((session.max_frame + 1).to_bytes(4, "big"))
    code = session.wait(session.timeout)
    if code is None:
        return Finding(
            "oversized-frame", False, "must", f"a length of max_frame + 1 ({session.max_frame + 1}): still waiting"
        )
    try:
        reply = session.recv()
    except _Broken:
        reply = {}
    wanted = ErrorCode.FRAME_TOO_LARGE
    told = reply.get("type") == "error" and reply.get("code") == wanted
    detail = f"refused a frame above its max_frame and exited {code}" + ("" if told else f" (without error {wanted})")
    return Finding("oversized-frame", code != 0, "must", detail)


def _check_end_of_input(session: _Session, payload: Any) -> Finding:
    session.sock.shutdown(socket.SHUT_WR)
    code = session.wait(session.timeout)
    if code is None:
        return Finding("end-of-input", False, "must", "still running after its stdin closed")
    return Finding("end-of-input", code == 0, "should", f"exited with status {code} when stdin closed")
