"""`check_plugin(command)`: run a plugin executable through protocol v1 and report what it
gets wrong, for plugin authors in any language (docs/protocol.md is the reference).

Every frame the plugin writes is judged by the host's own definitions: its `hello` by the
check the host makes of it (`_transports/_hello.py`), every later frame by the host's
envelope decoder (`_protocol/messages.py`, `PluginMessage`). A frame the host would refuse
fails the check that received it, naming the error code the host would raise.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from .._errors import ErrorCode, ProtocolError
from .._models import HealthStatus
from .._protocol import EnvelopeCodec, PluginHello, PluginMessage, handshake_env
from .._transports._hello import check_reply

__all__ = ["ConformanceReport", "Finding", "check_plugin"]

Severity = Literal["must", "should"]


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check.

    Attributes:
        check: A short stable name, e.g. "handshake" or "oversized-frame".
        passed: Whether the plugin behaved as the protocol requires.
        severity: "must" (a failure breaks hosts) or "should" (a recommendation).
        detail: What was expected and what happened.
    """

    check: str
    passed: bool
    severity: Severity
    detail: str


@dataclass(frozen=True, slots=True)
class ConformanceReport:
    """Every finding for one plugin command; `ok` when no MUST check failed."""

    command: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.passed for f in self.findings if f.severity == "must")

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.passed)

    def __str__(self) -> str:
        lines = [f"plugwire conformance report for: {shlex.join(self.command)}"]
        for f in self.findings:
            mark = "PASS" if f.passed else ("FAIL" if f.severity == "must" else "WARN")
            lines.append(f"  [{mark}] {f.check}: {f.detail}")
        failed = sum(1 for f in self.findings if not f.passed and f.severity == "must")
        warned = sum(1 for f in self.findings if not f.passed and f.severity == "should")
        verdict = "conforms" if self.ok else f"{failed} required check(s) failed"
        lines.append(f"result: {verdict}" + (f", {warned} warning(s)" if warned else ""))
        return "\n".join(lines)


class _Broken(Exception):
    """The plugin did something that ends the current check."""


def _no_junk() -> ProtocolError:  # (a reply that is not JSON at all failed to decode before)
    return ProtocolError("the hello reply is not JSON", code=ErrorCode.HANDSHAKE_JUNK)


class _Session:
    """One plugin process on a socket pair, driven with blocking, deadline-bounded I/O."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], timeout: float, cookie: bool = True) -> None:
        self.timeout = timeout
        self.sock, child = socket.socketpair()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close(), after the process
        full_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        full_env.update(env)
        if cookie:
            full_env.update(handshake_env("conformance"))
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
        self.codec = "json"
        self.max_frame = 16 * 1024 * 1024
        self._host: EnvelopeCodec | None = None  # the host's decoder of the plugin's frames
        self.last_body = b""

    # ----------------------------------------------------------------- frames
    def send(self, message: Mapping[str, Any], *, json: bool = False) -> None:
        body = msgspec.json.encode(message) if json or self.codec == "json" else msgspec.msgpack.encode(message)
        self.send_raw(len(body).to_bytes(4, "big") + body)

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Broken(f"could not write to the plugin: {exc}") from exc

    def recv(self, *, json: bool = False) -> dict[str, Any]:
        header = self._exact(4)
        size = int.from_bytes(header, "big")
        if size == 0 or size > 64 * 1024 * 1024:
            raise _Broken(f"bytes that are not a frame on stdout: {header + self._available()!r}")
        body = self.last_body = self._exact(size)
        try:
            value = msgspec.json.decode(body) if json or self.codec == "json" else msgspec.msgpack.decode(body)
        except (msgspec.DecodeError, RecursionError) as exc:  # (RecursionError: nested too deep)
            raise _Broken(f"undecodable envelope {body[:64]!r}: {exc}; the host raises 2003") from exc
        if not isinstance(value, dict) or "type" not in value:
            raise _Broken(f"an envelope without a 'type': {value!r:.100}")
        if self._host is not None and not json:
            try:
                self._host.decode(body)
            except ProtocolError as exc:
                raise _Broken(
                    f"the host refuses this frame with error {exc.code} ({exc.message}): it breaks the "
                    f"connection, the calls in flight fail with {ErrorCode.OUTCOME_UNKNOWN} and the plugin is "
                    f"restarted; frame {value!r:.160}"
                ) from None
        return value

    def _available(self) -> bytes:
        with contextlib.suppress(OSError):
            if select.select([self.sock], [], [], 0.05)[0]:
                return self.sock.recv(60)
        return b""

    def _exact(self, n: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        data = b""
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise _Broken(f"no answer within {self.timeout:g}s (got {len(data)} of {n} bytes: {data[:32]!r})")
            try:
                chunk = self.sock.recv(n - len(data))
            except OSError as exc:  # a reset: the plugin exited with our frame unread
                raise _Broken(f"the plugin closed stdout ({self.describe_exit()}): {exc}") from exc
            if not chunk:
                raise _Broken(f"the plugin closed stdout ({self.describe_exit()})")
            data += chunk
        return data

    def hello(self) -> dict[str, Any]:
        self.send(
            {"type": "hello", "versions": [1], "codecs": ["msgpack", "json"], "max_frame": 1 << 20, "auth": {}},
            json=True,
        )
        reply = self.recv(json=True)
        if reply.get("type") != "hello":
            raise _Broken(f"expected a hello reply, got {reply!r:.200}")
        verdict = check_reply(memoryview(self.last_body), ["msgpack", "json"], "conformance", _no_junk)
        if not isinstance(verdict, PluginHello):
            raise _Broken(f"the host refuses this hello with error {verdict.code}: {verdict.message}")
        self.codec = verdict.codec
        self.max_frame = verdict.max_frame
        self._host = EnvelopeCodec(verdict.codec, PluginMessage)  # type: ignore[arg-type]  # (checked)
        return reply

    def answers(self, count: int) -> list[dict[str, Any]]:
        return [self.recv() for _ in range(count)]

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


def check_plugin(
    command: str | Sequence[str],
    *,
    request: Any = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> ConformanceReport:
    """Run a plugin executable through every part of protocol v1 and report the results.

    Checks: it refuses to run without the magic cookie; the handshake; a call (with an
    unknown envelope field); concurrent calls matched by id; an unknown method; a passed
    deadline; cancellation; health; an oversized frame; shutdown; end of input.

    Args:
        command: The plugin command, as a list or a shell-style string.
        request: A valid request payload for its `call` (default: an empty map).
        env: Extra environment variables for the plugin.
        timeout: Seconds to wait for each answer.

    Returns:
        A `ConformanceReport`; `str(report)` is a readable summary, `report.ok` the verdict.
    """
    argv = tuple(shlex.split(command) if isinstance(command, str) else command)
    payload = {} if request is None else request
    extra = dict(env or {})
    findings: list[Finding] = [_check_no_cookie(argv, extra, timeout)]
    session = _Session(argv, extra, timeout)
    try:
        try:
            info = session.hello()
        except _Broken as exc:
            findings.append(Finding("handshake", False, "must", f"{exc}; stderr: {session.stderr_tail() or '-'}"))
            return ConformanceReport(argv, tuple(findings))
        name = info.get("info", {}).get("name") if isinstance(info.get("info"), dict) else None
        good = info.get("version") == 1 and isinstance(name, str) and name
        findings.append(
            Finding(
                "handshake",
                bool(good),
                "must",
                f"answered hello: version {info.get('version')}, codec {session.codec}, name {name!r}"
                if good
                else f"hello needs version 1 and info.name: {info!r:.200}",
            )
        )
        for check in (_check_call, _check_concurrency, _check_unknown_method, _check_deadline, _check_cancel):
            findings.append(_run(check, session, payload))
        findings.append(_run(_check_health, session, payload))
        findings.append(_run(_check_shutdown, session, payload))
    finally:
        session.close()
    findings.append(_fresh(argv, extra, timeout, _check_oversized))
    findings.append(_fresh(argv, extra, timeout, _check_end_of_input))
    return ConformanceReport(argv, tuple(findings))


def _run(check: Any, session: _Session, payload: Any) -> Finding:
    try:
        result: Finding = check(session, payload)
    except _Broken as exc:
        name = check.__name__.removeprefix("_check_").replace("_", "-")
        return Finding(name, False, "must", str(exc))
    return result


def _fresh(argv: tuple[str, ...], env: dict[str, str], timeout: float, check: Any) -> Finding:
    session = _Session(argv, env, timeout)
    try:
        session.hello()
        return _run(check, session, None)
    except _Broken as exc:
        return Finding(check.__name__.removeprefix("_check_").replace("_", "-"), False, "must", f"handshake: {exc}")
    finally:
        session.close()


def _check_no_cookie(argv: tuple[str, ...], env: dict[str, str], timeout: float) -> Finding:
    session = _Session(argv, env, timeout, cookie=False)
    try:
        session.sock.shutdown(socket.SHUT_WR)  # a human at a terminal who typed nothing
        code = session.wait(timeout)
        stdout = session._available() if code is not None else b""
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
    if reply.get("id") != 1 or reply.get("type") not in ("result", "error"):
        return Finding("call", False, "must", f"expected result or error for id 1, got {reply!r:.200}")
    if reply["type"] == "error" and not (isinstance(reply.get("code"), int) and isinstance(reply.get("message"), str)):
        return Finding("call", False, "must", f"an error needs an integer code and a message: {reply!r:.200}")
    what = "a result" if reply["type"] == "result" else f"error {reply['code']}: {reply['message']}"
    return Finding("call", True, "must", f"answered id 1 with {what} (an unknown envelope field was ignored)")


def _check_concurrency(session: _Session, payload: Any) -> Finding:
    ids = list(range(10, 18))
    for call_id in ids:
        session.send({"type": "call", "id": call_id, "method": "execute", "payload": payload})
    seen = sorted(r.get("id", -1) for r in session.answers(len(ids)))
    ok = seen == ids
    return Finding("concurrent-calls", ok, "must", f"8 pipelined calls answered once each: {seen}")


def _check_unknown_method(session: _Session, payload: Any) -> Finding:
    session.send({"type": "call", "id": 20, "method": "no-such-method", "payload": payload})
    reply = session.recv()
    ok = reply.get("type") == "error" and reply.get("id") == 20 and reply.get("code") == 2007
    detail = "answered error 2007" if ok else f"expected error 2007 for id 20, got {reply!r:.160}"
    return Finding("unknown-method", ok, "must", detail)


def _check_deadline(session: _Session, payload: Any) -> Finding:
    session.send({"type": "call", "id": 21, "method": "execute", "payload": payload, "ctx": {"deadline": 1.0}})
    reply = session.recv()
    ok = reply.get("id") == 21 and reply.get("type") == "error" and reply.get("code") == 1204
    detail = (
        "a call whose deadline passed got error 1204"
        if ok
        else f"a call whose deadline passed; expected error 1204, got {reply!r:.160}"
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
        return Finding("health", False, "should", detail)
    try:  # as the host reads it (`HostConnection.health`)
        status = msgspec.convert(reply.get("payload"), HealthStatus).status.value
    except msgspec.ValidationError as exc:
        status = f"invalid: {exc}"
    ok = reply.get("type") == "result" and reply.get("id") == 40 and status in _STATUSES
    detail = (
        f"reports {status!r}"
        if ok
        else f"expected a result with a status in {sorted(_STATUSES)} (else the host raises "
        f"{ErrorCode.ENVELOPE_INVALID}), got {reply!r:.160}"
    )
    return Finding("health", ok, "must", detail)


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
    told = reply.get("type") == "error" and reply.get("code") == 2001
    detail = f"refused a frame above its max_frame and exited {code}" + ("" if told else " (without error 2001)")
    return Finding("oversized-frame", code != 0, "must", detail)


def _check_end_of_input(session: _Session, payload: Any) -> Finding:
    session.sock.shutdown(socket.SHUT_WR)
    code = session.wait(session.timeout)
    if code is None:
        return Finding("end-of-input", False, "must", "still running after its stdin closed")
    return Finding("end-of-input", code == 0, "should", f"exited with status {code} when stdin closed")


_STATUSES = frozenset({"healthy", "degraded", "unhealthy", "offline"})
