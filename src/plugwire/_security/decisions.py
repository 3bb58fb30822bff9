"""Security decisions: what the whitelist says about one plugin, before a policy applies.

Each function checks one kind of plugin and returns a `Decision`; none raises for a refusal
(the policy engine decides whether a refusal stops the plugin) and none writes audit rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ErrorCode, SecurityError
from .audit import AuditEvent
from .hashing import digest_fd
from .launch import ExecCache, FileFacts, check_location, locate_in_argv, open_checked, shebang
from .whitelist import Whitelist, WhitelistEntry, has_parent_segment

__all__ = ["Decision", "decide_endpoint", "decide_executable"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one plugin.

    Attributes:
        plugin: Its name.
        allowed: Whether the whitelist admits it.
        event: The audit event this decision is recorded as.
        reason: Why (readable; never a secret).
        code: The 1800-range code of a refusal.
        argv: The command to run (for a launch: with the verified private copy in place).
        facts: Extra facts for the audit row (path, hash, interpreter, ...).
        entry: The whitelist entry consulted, if any.
    """

    plugin: str
    allowed: bool
    event: AuditEvent
    reason: str
    code: int | None = None
    argv: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    entry: WhitelistEntry | None = None

    def error(self) -> SecurityError:
        """The error a strict policy raises for this refusal."""
        return SecurityError(self.reason, code=self.code or ErrorCode.SECURITY, plugin=self.plugin, details=self.facts)


def _refuse(plugin: str, code: int, reason: str, **kwargs: Any) -> Decision:
    event = AuditEvent.HASH_MISMATCH if code == ErrorCode.HASH_MISMATCH else AuditEvent.UNAUTHORIZED
    return Decision(plugin, False, event, reason, code, **kwargs)


def decide_executable(
    whitelist: Whitelist,
    name: str,
    argv: Sequence[str],
    cwd: str | os.PathLike[str] | None,
    *,
    roots: Sequence[Path],
    cache: ExecCache | None,
    copy_refused: bool = False,
) -> Decision:
    """Verify an executable plugin against its entry, through one open descriptor.

    Args:
        whitelist: The current whitelist.
        name: The plugin name.
        argv: The command about to run.
        cwd: The folder it runs in (relative paths in `argv` resolve against it).
        roots: Folders symlinks may lead into.
        cache: Where to put the verified copy; None checks without copying (registration).
        copy_refused: Also copy bytes that do not match (a permissive policy runs them, and
            the copy makes the recorded hash the hash of what actually ran).

    Returns:
        The decision; when a copy was made, `argv` has it in place of the pinned file.
    """
    command = tuple(argv)
    entry = whitelist.get(name)
    if entry is None:
        return _refuse(name, ErrorCode.NOT_WHITELISTED, f"plugin {name!r} is not in the whitelist", argv=command)
    facts: dict[str, Any] = {"path": str(entry.path) if entry.path else None, "expected": entry.pinned}
    if not entry.enabled:
        return _refuse(
            name, ErrorCode.WHITELIST_ENTRY_DISABLED, f"plugin {name!r} is disabled in the whitelist",
            argv=command, facts=facts, entry=entry,
        )  # fmt: skip
    if entry.path is None:
        return _refuse(
            name, ErrorCode.NOT_WHITELISTED, f"plugin {name!r} is whitelisted as an endpoint, not as a file",
            argv=command, facts=facts, entry=entry,
        )  # fmt: skip
    index = locate_in_argv(command, entry.path, cwd)
    if index is None:
        return _refuse(
            name, ErrorCode.EXECUTABLE_NOT_IN_ARGV,
            f"plugin {name!r}: the command {command[0]!r} does not run the whitelisted file {entry.path}",
            argv=command, facts=facts, entry=entry,
        )  # fmt: skip
    try:
        if has_parent_segment(command[index]):
            raise SecurityError(f"{command[index]!r} has a '..' segment", code=ErrorCode.PATH_TRAVERSAL)
        real = check_location(entry.path, roots)
        fd, info = open_checked(real)
    except SecurityError as exc:
        return _refuse(name, exc.code, f"plugin {name!r}: {exc.message}", argv=command, facts=facts, entry=entry)
    try:
        actual = FileFacts(real, entry.algorithm, digest_fd(fd, entry.algorithm), info.st_size, shebang(fd))
        facts.update(path=str(real), hash=f"{entry.algorithm}:{actual.digest}", size=actual.size)
        if index:
            facts["interpreter"] = command[0]
        elif actual.interpreter:
            facts["interpreter"] = actual.interpreter
        matches = actual.digest == entry.digest
        if cache is None or not (matches or copy_refused):
            launch = command
        else:
            try:
                copy = cache.materialize(name, fd, entry.algorithm, actual.digest)
            except SecurityError as exc:
                return _refuse(name, exc.code, exc.message, argv=command, facts=facts, entry=entry)
            launch = (*command[:index], str(copy), *command[index + 1 :])
            facts["launched"] = str(copy)
    finally:
        os.close(fd)
    if not matches:
        return _refuse(
            name, ErrorCode.HASH_MISMATCH,
            f"plugin {name!r}: {real} hashes to {entry.algorithm}:{actual.digest[:16]}..., "
            f"the whitelist pins {entry.pinned[: len(entry.algorithm) + 17]}...",
            argv=launch, facts=facts, entry=entry,
        )  # fmt: skip
    return Decision(name, True, AuditEvent.AUTHORIZED, "hash matches the whitelist", None, launch, facts, entry)


def decide_endpoint(whitelist: Whitelist, name: str, endpoint: str) -> Decision:
    """Check a gRPC plugin's endpoint against the whitelist's endpoint entries.

    A plugin whose entry pins an endpoint must use exactly that endpoint. A plugin without
    an entry is admitted only when the whitelist pins no endpoints at all, or when an
    endpoint entry names its endpoint.
    """
    facts: dict[str, Any] = {"endpoint": endpoint}
    entry = whitelist.get(name)
    if entry is not None:
        if not entry.enabled:
            return _refuse(
                name, ErrorCode.WHITELIST_ENTRY_DISABLED, f"plugin {name!r} is disabled in the whitelist",
                facts=facts, entry=entry,
            )  # fmt: skip
        if entry.endpoint != endpoint:
            pinned = entry.endpoint or f"the file {entry.path}"
            return _refuse(
                name, ErrorCode.ENDPOINT_NOT_WHITELISTED,
                f"plugin {name!r} connects to {endpoint!r}, but the whitelist pins {pinned}",
                facts=facts, entry=entry,
            )  # fmt: skip
        return Decision(name, True, AuditEvent.AUTHORIZED, "endpoint matches the whitelist", facts=facts, entry=entry)
    by_endpoint = whitelist.by_endpoint(endpoint)
    if by_endpoint is not None and by_endpoint.enabled:
        return Decision(
            name, True, AuditEvent.AUTHORIZED, f"endpoint whitelisted as {by_endpoint.name!r}",
            facts=facts, entry=by_endpoint,
        )  # fmt: skip
    if whitelist.has_endpoints:
        return _refuse(
            name, ErrorCode.ENDPOINT_NOT_WHITELISTED, f"endpoint {endpoint!r} of plugin {name!r} is not whitelisted",
            facts=facts,
        )  # fmt: skip
    return Decision(name, True, AuditEvent.AUTHORIZED, "the whitelist pins no endpoints", facts=facts)
