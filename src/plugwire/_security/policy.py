"""The security engine: applies the policy (strict, permissive, audit, disabled) to decisions,
records them in the audit log, builds verified-launch hooks and reloads the whitelist."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from .._config import PluginConfig, SecurityConfig
from .._errors import ErrorCode, SecurityError
from .._models import SecurityPolicy, Transport
from .._types import LoggerLike
from .audit import AuditEvent, AuditLog, default_audit_path
from .decisions import Decision, decide_endpoint, decide_executable
from .hashing import check_algorithm
from .launch import ExecCache
from .watch import WhitelistWatcher
from .whitelist import Whitelist, load_whitelist, parse_whitelist, read_whitelist, whitelist_fingerprint

__all__ = ["LaunchHook", "SecurityEngine", "WhitelistListener"]

LaunchHook = Callable[[list[str]], Awaitable[list[str]]]
"""Awaited before every spawn with the argv about to run; returns the argv to exec."""

WhitelistListener = Callable[[Whitelist], Awaitable[None] | None]


class SecurityEngine:
    """Holds the whitelist, the policy and the audit log, and decides about plugins.

    Build it with `SecurityEngine.from_config(config)`; close it with `aclose()`.

    Args:
        config: The security settings.
        whitelist: The loaded whitelist.
        audit: Where decisions are recorded (None: nowhere).
        logger: Where warnings go (defaults to `plugwire.security`).
        exec_dir: Where verified copies are kept (a private temporary folder by default).
        allowed_dirs: Folders symlinks may lead into, besides the whitelisted files' folders.
    """

    def __init__(
        self,
        config: SecurityConfig,
        whitelist: Whitelist,
        *,
        audit: AuditLog | None = None,
        logger: LoggerLike | None = None,
        exec_dir: str | os.PathLike[str] | None = None,
        allowed_dirs: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self.config = config
        self._whitelist = whitelist
        self.audit = audit
        self.logger: LoggerLike = logger or logging.getLogger("plugwire.security")
        self._allowed = tuple(Path(os.path.abspath(d)) for d in allowed_dirs)
        self._cache = ExecCache(exec_dir)
        self._listeners: list[WhitelistListener] = []
        self._watcher: WhitelistWatcher | None = None
        self._policy = config.policy
        # The fingerprint of the whitelist bytes last read (valid or not): a reload of the
        # same bytes does nothing, so a rejected file is rejected (and audited) once.
        self._seen = whitelist.fingerprint
        self._sync_audit_filters()

    @classmethod
    def from_config(
        cls,
        config: SecurityConfig,
        *,
        logger: LoggerLike | None = None,
        exec_dir: str | os.PathLike[str] | None = None,
        allowed_dirs: Sequence[str | os.PathLike[str]] = (),
    ) -> SecurityEngine:
        """Load the whitelist and open the audit log that `config` describes.

        The audit log is opened when `audit_config.enabled` or the policy is `audit`; its
        default place is the host's data folder, and it may never be inside a plugin folder.

        Raises:
            SecurityError: The whitelist is malformed (1804-1808), or the audit log cannot
                be opened (1811) or would sit in a plugin folder (1812).
        """
        whitelist = _configured_whitelist(config)
        return cls._with_whitelist(config, whitelist, logger=logger, exec_dir=exec_dir, allowed_dirs=allowed_dirs)

    @classmethod
    async def afrom_config(
        cls,
        config: SecurityConfig,
        *,
        logger: LoggerLike | None = None,
        exec_dir: str | os.PathLike[str] | None = None,
        allowed_dirs: Sequence[str | os.PathLike[str]] = (),
    ) -> SecurityEngine:
        """`from_config`, reading and parsing the whitelist in a worker thread.

        Raises:
            SecurityError: As `from_config`.
        """
        whitelist = await asyncio.to_thread(_configured_whitelist, config)
        return cls._with_whitelist(config, whitelist, logger=logger, exec_dir=exec_dir, allowed_dirs=allowed_dirs)

    @classmethod
    def _with_whitelist(
        cls,
        config: SecurityConfig,
        whitelist: Whitelist,
        *,
        logger: LoggerLike | None,
        exec_dir: str | os.PathLike[str] | None,
        allowed_dirs: Sequence[str | os.PathLike[str]],
    ) -> SecurityEngine:
        audit: AuditLog | None = None
        settings = config.audit_config
        if settings.enabled or config.policy is SecurityPolicy.AUDIT:
            path = Path(os.path.abspath(settings.audit_file)) if settings.audit_file else default_audit_path()
            _refuse_audit_in_plugin_folder(path, whitelist, allowed_dirs)
            audit = AuditLog(path, settings)
        engine = cls(config, whitelist, audit=audit, logger=logger, exec_dir=exec_dir, allowed_dirs=allowed_dirs)
        engine._record(
            AuditEvent.WHITELIST_LOADED,
            None,
            {"file": str(whitelist.source or ""), "entries": len(whitelist), "fingerprint": whitelist.fingerprint},
        )
        return engine

    # ------------------------------------------------------------------ state
    @property
    def whitelist(self) -> Whitelist:
        """The whitelist in force."""
        return self._whitelist

    @property
    def policy(self) -> SecurityPolicy:
        """The policy in force."""
        return self._policy

    def set_policy(self, policy: SecurityPolicy) -> None:
        """Change the policy (recorded as `policy.changed`)."""
        old, self._policy = self._policy, SecurityPolicy(policy)
        self._sync_audit_filters()
        if old is not self._policy:
            self._record(AuditEvent.POLICY_CHANGED, None, {"from": old.value, "to": self._policy.value})

    def _sync_audit_filters(self) -> None:
        if self.audit is not None:
            # The audit policy records every decision, whatever the log_* settings say.
            settings, everything = self.config.audit_config, self._policy is SecurityPolicy.AUDIT
            self.audit.log_authorized = settings.log_authorized or everything
            self.audit.log_unauthorized = settings.log_unauthorized or everything

    @property
    def roots(self) -> tuple[Path, ...]:
        """Folders a symlink may lead into: the whitelisted files' folders and `allowed_dirs`."""
        return (*self._whitelist.folders, *self._allowed)

    # -------------------------------------------------------------- decisions
    def evaluate(self, config: PluginConfig) -> Decision | None:
        """What the whitelist says about a plugin's config, without applying the policy.

        Returns None for in-process plugins (host code, nothing to pin).
        """
        if config.transport in (Transport.EXECUTABLE, Transport.GO_PLUGIN):
            argv = [config.executable, *config.args]
            return decide_executable(
                self._whitelist, config.name, argv, config.work_dir or None, roots=self.roots, cache=None
            )
        if config.transport in (Transport.GRPC, Transport.GRPC_TLS):
            return decide_endpoint(self._whitelist, config.name, config.endpoint)
        return None

    def check_plugin(self, config: PluginConfig) -> Decision | None:
        """Check a plugin at registration and apply the policy.

        Raises:
            SecurityError: Under `strict`, for any refusal (1801-1814).
        """
        if self._policy is SecurityPolicy.DISABLED:
            return None
        decision = self.evaluate(config)
        if decision is not None:
            self.apply(decision)
        return decision

    def check_endpoint(self, name: str, endpoint: str) -> Decision | None:
        """Check a gRPC plugin's endpoint (at connect and reconnect) and apply the policy."""
        if self._policy is SecurityPolicy.DISABLED:
            return None
        return self.apply(decide_endpoint(self._whitelist, name, endpoint))

    def apply(self, decision: Decision, *, raise_refusal: bool = True) -> Decision:
        """Record a decision and enforce the policy on it.

        Raises:
            SecurityError: Under `strict` when the decision is a refusal and `raise_refusal`.
        """
        if self._policy is SecurityPolicy.DISABLED:
            return decision
        fields: dict[str, Any] = {"policy": self._policy.value, "reason": decision.reason, **decision.facts}
        if decision.code is not None:
            fields["code"] = int(decision.code)
        if decision.entry is not None and decision.entry.metadata and self.audit and self.audit.include_metadata:
            fields["metadata"] = dict(decision.entry.metadata)
        self._record(decision.event, decision.plugin, fields)
        if decision.allowed:
            return decision
        if self._policy is SecurityPolicy.STRICT:
            if raise_refusal:
                raise decision.error()
            return decision
        level = "warning" if self._policy is SecurityPolicy.PERMISSIVE else "info"
        self._log(level, f"security ({self._policy.value}): {decision.reason}; running it anyway")
        return decision

    async def prepare_launch(
        self, name: str, argv: Sequence[str], cwd: str | os.PathLike[str] | None = None
    ) -> list[str]:
        """Verify the executable `argv` runs and return the argv of its verified private copy.

        Hashing and copying run in a worker thread, so the event loop never waits on them.

        Raises:
            SecurityError: Under `strict` when the plugin is refused; nothing is launched.
        """
        policy = self._policy
        if policy is SecurityPolicy.DISABLED:
            return list(argv)
        decision = await asyncio.to_thread(
            decide_executable,
            self._whitelist,
            name,
            list(argv),
            cwd,
            roots=self.roots,
            cache=self._cache,
            copy_refused=policy is not SecurityPolicy.STRICT,
        )
        self.apply(decision)
        return list(decision.argv)

    def launch_hook(self, name: str, *, cwd: str | os.PathLike[str] | None = None) -> LaunchHook:
        """A `prepare_launch` hook for the subprocess transport of plugin `name`.

        Awaited before every spawn (first start and each restart) with the argv about to
        run; returns the argv of the verified private copy, or raises `SecurityError` under
        `strict`.
        """

        async def prepare_launch(argv: list[str]) -> list[str]:
            return await self.prepare_launch(name, argv, cwd)

        return prepare_launch

    # ---------------------------------------------------------------- reload
    def add_listener(self, listener: WhitelistListener) -> None:
        """Call `listener(new_whitelist)` after every successful change of the whitelist."""
        self._listeners.append(listener)

    def reload(self) -> bool:
        """Re-read the whitelist file; a broken file keeps the old whitelist.

        The same bytes as last read are not parsed again (and a broken file is recorded as
        `whitelist.rejected` once, not once per event). This reads and parses on the calling
        thread: from async code use `areload()`.

        Returns:
            True when a different, valid whitelist is now in force.
        """
        if not self.config.whitelist_file:
            return False
        return self._apply_reload(self._read_fresh())

    async def areload(self) -> bool:
        """`reload()` with reading and parsing in a worker thread: the event loop never waits
        on a large file."""
        if not self.config.whitelist_file:
            return False
        return self._apply_reload(await asyncio.to_thread(self._read_fresh))

    def _read_fresh(self) -> Whitelist | SecurityError | None:
        """The whitelist file's new content, its error, or None when it is what was last read."""
        file = Path(os.path.abspath(self.config.whitelist_file))
        try:
            raw = read_whitelist(file)
        except SecurityError as exc:
            seen = f"error:{exc.code}:{exc.message}"
            if seen == self._seen:
                return None
            self._seen = seen
            return exc
        fingerprint = whitelist_fingerprint(raw)
        if fingerprint == self._seen:
            return None
        self._seen = fingerprint
        try:
            return parse_whitelist(raw, file, default_algorithm=self.config.hash_algorithm)
        except SecurityError as exc:
            return exc

    def _apply_reload(self, fresh: Whitelist | SecurityError | None) -> bool:
        source = self.config.whitelist_file
        if fresh is None:
            return False
        if isinstance(fresh, SecurityError):
            self._record(
                AuditEvent.WHITELIST_REJECTED, None, {"file": source, "code": fresh.code, "error": fresh.message}
            )
            self._log("error", f"whitelist reload refused, keeping the previous one: {fresh.message}")
            return False
        old = self._whitelist
        if fresh.fingerprint == old.fingerprint:
            return False
        self._whitelist = fresh
        before = {entry.name: entry for entry in old}
        after = {entry.name: entry for entry in fresh}
        self._record(
            AuditEvent.WHITELIST_CHANGED,
            None,
            {
                "file": source,
                "fingerprint": fresh.fingerprint,
                "added": sorted(after.keys() - before.keys()),
                "removed": sorted(before.keys() - after.keys()),
                "changed": sorted(n for n in after.keys() & before.keys() if after[n] != before[n]),
            },
        )
        self._log("info", f"whitelist reloaded from {source} ({len(fresh)} entries)")
        return True

    async def _on_file_event(self) -> None:
        if await self.areload():
            for listener in list(self._listeners):
                try:
                    result = listener(self._whitelist)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    self._log("error", f"whitelist listener failed: {exc}")

    async def start_watching(self, *, use_watchfiles: bool | None = None, poll_interval: float = 0.2) -> None:
        """Watch the whitelist's folder and reload on any change (rename and symlink swaps too)."""
        if self._watcher is not None or not self.config.whitelist_file:
            return
        self._watcher = WhitelistWatcher(
            self.config.whitelist_file,
            self._on_file_event,
            use_watchfiles=use_watchfiles,
            poll_interval=poll_interval,
        )
        await self._watcher.start()

    async def aclose(self) -> None:
        """Stop watching, flush and close the audit log, and remove the verified copies."""
        if self._watcher is not None:
            await self._watcher.aclose()
            self._watcher = None
        if self.audit is not None:
            await self.audit.aclose()
        self._cache.close()

    # ---------------------------------------------------------------- helpers
    def _record(self, event: AuditEvent, plugin: str | None, fields: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.record(event, plugin, **fields)

    def _log(self, level: str, message: str) -> None:
        try:
            getattr(self.logger, level)(message)
        except Exception:  # a broken logger must never break the host
            logging.getLogger("plugwire.security").exception("the configured logger failed")


def _configured_whitelist(config: SecurityConfig) -> Whitelist:
    check_algorithm(config.hash_algorithm, where="security.hash_algorithm")
    if config.whitelist_file:
        return load_whitelist(config.whitelist_file, default_algorithm=config.hash_algorithm)
    return Whitelist(version="1.0", entries=())


def _refuse_audit_in_plugin_folder(path: Path, whitelist: Whitelist, extra: Sequence[str | os.PathLike[str]]) -> None:
    real = Path(os.path.realpath(path))
    for folder in (*whitelist.folders, *(Path(d) for d in extra)):
        if real.is_relative_to(os.path.realpath(folder)):
            raise SecurityError(
                f"the audit log {path} would be inside the plugin folder {folder}; keep it in the host's data folder",
                code=ErrorCode.AUDIT_LOCATION,
            )
