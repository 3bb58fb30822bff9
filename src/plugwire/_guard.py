"""The manager's link to the security system: checks at registration and at every spawn,
whitelist changes that stop refused plugins, and the audit rows of plugin lifecycles."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ._auth import configured_secrets
from ._config import ManagerConfig, PluginConfig, SecurityConfig
from ._models import SecurityPolicy
from ._security import AuditEvent, AuditLog, SecurityEngine, Whitelist
from ._transports._pooled import PooledTransport
from ._transports.base import BaseTransport
from ._types import LoggerLike

if TYPE_CHECKING:
    from ._transports.goplugin import GoPluginTransport
    from ._transports.subprocess import SubprocessTransport

__all__ = ["SecurityGuard"]

_LIFECYCLE_EVENTS = {"crashed": AuditEvent.CRASHED, "restarted": AuditEvent.RESTARTED}

Refuse = Callable[[str, PluginConfig, str], Awaitable[None]]
"""Drains and stops the running plugin `name` (with `config`) for `reason`."""


class SecurityGuard:
    """Holds the manager's `SecurityEngine` (if any) and applies it to the manager's plugins.

    Args:
        config: The manager's config; its `security` section enables security on start,
            unless `enable()` was called first.
        logger: Where the engine logs.
        running: The configs of the plugins registered now.
        refuse: Stops a running plugin the whitelist no longer allows.
    """

    def __init__(
        self,
        config: ManagerConfig,
        logger: LoggerLike,
        running: Callable[[], list[PluginConfig]],
        refuse: Refuse,
    ) -> None:
        self.config = config
        self.logger = logger
        self.engine: SecurityEngine | None = None
        self._chosen = False  # set once enable() ran: the config's section no longer decides
        self._running = running
        self._refuse = refuse

    @property
    def audit(self) -> AuditLog | None:
        return self.engine.audit if self.engine is not None else None

    async def enable(self, config: SecurityConfig, *, exec_dir: str | None = None) -> None:
        """See `AsyncPluginManager.enable_plugin_security`."""
        self._chosen = True
        if not config.enabled:
            old, self.engine = self.engine, None
            if old is not None:
                old.set_policy(SecurityPolicy.DISABLED)  # leaves a policy.changed row
                await old.aclose()
            return
        engine = await SecurityEngine.afrom_config(config, logger=self.logger, exec_dir=exec_dir)
        old, self.engine = self.engine, engine
        if old is not None:
            await old.aclose()
        engine.add_listener(self._whitelist_changed)
        for plugin in self._running():
            self._protect_secrets(plugin)
        if config.watch_config:
            await engine.start_watching()
        await self._whitelist_changed(engine.whitelist)

    async def ensure(self) -> None:
        """Enable security from the manager's config, unless `enable()` already decided."""
        if not self._chosen and self.config.security.enabled:
            await self.enable(self.config.security)

    async def admit(self, config: PluginConfig) -> None:
        """Check a plugin about to be registered; under `strict` a refusal raises `SecurityError`."""
        engine = self.engine
        if engine is None:
            return
        self._protect_secrets(config)
        await asyncio.to_thread(engine.check_plugin, config)  # hashing runs off the loop

    def watch(self, transport: BaseTransport, config: PluginConfig) -> None:
        """Put the security system on a subprocess or go-plugin transport's launch path, and
        its crashes and restarts in the audit log.

        The launch guard looks the engine up at each spawn, so a plugin registered before
        `enable()` is verified from its next start or restart on.
        """
        if not isinstance(transport, PooledTransport):  # the two transports that launch processes
            return
        supervised = cast("SubprocessTransport | GoPluginTransport", transport)
        name, cwd = config.name, config.work_dir or None

        async def verified_launch(argv: list[str]) -> list[str]:
            engine = self.engine
            return argv if engine is None else await engine.prepare_launch(name, argv, cwd)

        def audit_lifecycle(event: str, fields: Mapping[str, Any]) -> None:
            kind = _LIFECYCLE_EVENTS.get(event)
            if kind is not None:
                self.record(kind, name, **fields)

        supervised.launch_guards.append(verified_launch)
        supervised.listeners.append(audit_lifecycle)

    def record(self, event: AuditEvent, plugin: str | None, **fields: Any) -> None:
        """Queue an audit row, when an audit log is on (never waits on disk)."""
        audit = self.audit
        if audit is not None:
            audit.record(event, plugin, **fields)

    async def aclose(self) -> None:
        if self.engine is not None:
            await self.engine.aclose()

    def _protect_secrets(self, config: PluginConfig) -> None:
        audit = self.audit
        if audit is not None:
            for secret in configured_secrets(config.auth):  # inline, *_file and *_env alike
                audit.add_secret(secret)

    async def _whitelist_changed(self, whitelist: Whitelist) -> None:
        """Under strict, drain and stop every running plugin the new whitelist refuses."""
        engine = self.engine
        if engine is None or engine.policy is not SecurityPolicy.STRICT:
            return
        for config in self._running():
            decision = await asyncio.to_thread(engine.evaluate, config)
            if decision is None or decision.allowed:
                continue
            engine.apply(decision, raise_refusal=False)
            await self._refuse(config.name, config, decision.reason)
