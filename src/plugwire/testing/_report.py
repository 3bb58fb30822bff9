"""The findings of a conformance run and their report, shared by the subprocess and gRPC checks."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from .._errors import ErrorCode, PluginError

__all__ = ["ConformanceReport", "Finding", "Severity", "code_label"]

Severity = Literal["must", "should"]


def code_label(code: int) -> str:
    """`2003 ENVELOPE_INVALID`, or the bare number for a code plugwire does not define."""
    try:
        return f"{code} {ErrorCode(code).name}"
    except ValueError:
        return str(code)


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check.

    Attributes:
        check: A short stable name, e.g. "handshake" or "oversized-frame".
        passed: Whether the plugin behaved as the protocol requires.
        severity: "must" (a failure breaks hosts) or "should" (a recommendation).
        detail: What was expected and what happened.
        code: The error code a plugwire host raises on what the plugin did (0: none): for a
            failed check, the error the host's own decoders and transports raise on it.
    """

    check: str
    passed: bool
    severity: Severity
    detail: str
    code: int = 0

    @classmethod
    def refused(cls, check: str, error: PluginError, what: str, severity: Severity = "must") -> Finding:
        """A failed check whose cause the host refuses with `error`: names its code and words."""
        detail = f"{what}: the host raises {code_label(error.code)}: {error.message}"
        return cls(check, False, severity, detail, error.code)


@dataclass(frozen=True, slots=True)
class ConformanceReport:
    """Every finding for one plugin; `ok` when no MUST check failed.

    Attributes:
        command: The plugin command that was checked (empty for a gRPC address).
        findings: One finding per check, in the order they ran.
        address: The gRPC target that was checked ("" for a command).
    """

    command: tuple[str, ...]
    findings: tuple[Finding, ...]
    address: str = ""

    @property
    def ok(self) -> bool:
        """Whether every MUST check passed."""
        return all(f.passed for f in self.findings if f.severity == "must")

    @property
    def failures(self) -> tuple[Finding, ...]:
        """The findings that did not pass (MUST and SHOULD)."""
        return tuple(f for f in self.findings if not f.passed)

    @property
    def subject(self) -> str:
        """What was checked: the gRPC address, or the command as a shell line."""
        return f"gRPC {self.address}" if self.address else shlex.join(self.command)

    def __str__(self) -> str:
        lines = [f"plugwire conformance report for: {self.subject}"]
        for f in self.findings:
            mark = "PASS" if f.passed else ("FAIL" if f.severity == "must" else "WARN")
            lines.append(f"  [{mark}] {f.check}: {f.detail}")
        failed = sum(1 for f in self.findings if not f.passed and f.severity == "must")
        warned = sum(1 for f in self.findings if not f.passed and f.severity == "should")
        verdict = "conforms" if self.ok else f"{failed} required check(s) failed"
        lines.append(f"result: {verdict}" + (f", {warned} warning(s)" if warned else ""))
        return "\n".join(lines)
