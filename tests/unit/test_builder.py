from __future__ import annotations

import logging

import pytest

import plugwire
from plugwire import PluginConfig
from tests.support.sample_plugins import AuthPlugin, AuthRequest, AuthResponse


async def test_development_builds_a_manager_with_longer_timeouts_and_debug_logging() -> None:
    manager = plugwire.development(AuthRequest, AuthResponse).with_plugin("auth", AuthPlugin()).build()
    async with manager:
        assert (await manager.execute("auth", AuthRequest("u", "good"))).valid
        config = manager._entries["auth"].config
    assert config.connection.request_timeout == 120.0
    assert manager.config.log_level == "debug"


def test_each_builder_sets_every_plugwire_logger_to_its_profiles_level() -> None:
    root, manager_logger = logging.getLogger("plugwire"), logging.getLogger("plugwire.manager")
    before = root.level, manager_logger.level
    try:
        plugwire.simple(AuthRequest, AuthResponse).build()
        assert logging.getLogger("plugwire.plugin.auth").getEffectiveLevel() == logging.INFO
        plugwire.development(AuthRequest, AuthResponse).build()  # a second builder, another profile
        assert manager_logger.getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("plugwire.plugin.auth").getEffectiveLevel() == logging.DEBUG
        plugwire.production(AuthRequest, AuthResponse).build_blocking().close()
        assert logging.getLogger("plugwire.transport.subprocess").getEffectiveLevel() == logging.WARNING
        own = logging.getLogger("app")
        plugwire.development(AuthRequest, AuthResponse).with_logger(own).build()
        assert root.getEffectiveLevel() == logging.WARNING  # a logger of the application's own: left alone
    finally:
        root.setLevel(before[0])
        manager_logger.setLevel(before[1])


async def test_production_has_shorter_timeouts_than_development() -> None:
    prod = plugwire.production(AuthRequest, AuthResponse).with_plugin("a", AuthPlugin()).build()
    async with prod:
        timeout = prod._entries["a"].config.connection.request_timeout
    assert timeout == 10.0
    assert prod.config.log_level == "warning"


async def test_with_timeout_applies_to_every_plugin_and_a_given_config_is_used_as_is() -> None:
    given = PluginConfig(name="ignored", connection=plugwire.ConnectionConfig(request_timeout=3.0))
    manager = (
        plugwire.simple(AuthRequest, AuthResponse)
        .with_timeout(7)
        .with_plugin("a", AuthPlugin())
        .with_plugin("b", plugwire.in_process(AuthPlugin()), config=given)
        .build()
    )
    async with manager:
        assert manager._entries["a"].config.connection.request_timeout == 7.0
        assert manager._entries["b"].config.connection.request_timeout == 3.0
        assert manager._entries["b"].config.name == "b"


def test_with_logger_is_used_by_the_manager() -> None:
    logger = logging.getLogger("tests.builder")
    manager = plugwire.simple(AuthRequest, AuthResponse).with_logger(logger).build()
    assert manager.logger is logger


def test_builder_refuses_duplicate_names_and_bad_timeouts() -> None:
    builder = plugwire.simple(AuthRequest, AuthResponse).with_plugin("a", AuthPlugin())
    with pytest.raises(plugwire.ConfigError) as caught:
        builder.with_plugin("a", AuthPlugin())
    assert caught.value.code == 1009
    with pytest.raises(plugwire.ConfigError) as bad:
        builder.with_timeout(0)
    assert bad.value.code == 1003


def test_build_blocking_returns_a_started_blocking_manager() -> None:
    plugin = AuthPlugin()
    with plugwire.simple(AuthRequest, AuthResponse).with_plugin("auth", plugin).build_blocking() as manager:
        assert manager.execute("auth", AuthRequest("u", "good")).valid
    assert plugin.closed == 1


def test_build_blocking_closes_its_thread_when_a_plugin_fails_to_start() -> None:
    class Broken(AuthPlugin):
        def info(self) -> plugwire.PluginInfo:
            raise RuntimeError("no info")

    with pytest.raises(plugwire.ExecutionError, match="no info"):
        plugwire.simple(AuthRequest, AuthResponse).with_plugin("x", Broken()).build_blocking()


def test_build_blocking_starts_plugins_in_priority_order_as_build_does() -> None:
    started: list[str] = []

    class Recorded(AuthPlugin):
        def info(self) -> plugwire.PluginInfo:
            started.append(self.name)
            return super().info()

    def config(name: str, priority: int) -> PluginConfig:
        return PluginConfig(name=name, priority=priority, transport=plugwire.Transport.IN_PROCESS)

    builder = plugwire.simple(AuthRequest, AuthResponse)
    for name, priority in (("late", 5), ("first", -1), ("middle", 0), ("also-middle", 0)):
        builder = builder.with_plugin(name, Recorded(name), config=config(name, priority))
    with builder.build_blocking():
        pass
    assert started == ["first", "middle", "also-middle", "late"]


def test_configs_built_in_python_are_checked_as_strictly_as_files() -> None:
    with pytest.raises(plugwire.ConfigError) as caught:
        plugwire.simple(AuthRequest, AuthResponse).with_plugin("bad name/../x", AuthPlugin()).build()
    assert caught.value.code == plugwire.errors.ErrorCode.CONFIG_INVALID_NAME
    negative = PluginConfig(name="x", retry=plugwire.RetryConfig(max_retries=-3))
    with pytest.raises(plugwire.ConfigError) as retries:
        plugwire.simple(AuthRequest, AuthResponse).with_plugin("x", AuthPlugin(), config=negative).build()
    assert "retry.max_retries" in retries.value.message
    with pytest.raises(plugwire.ConfigError) as manager_level:
        plugwire.AsyncPluginManager(AuthRequest, AuthResponse, plugwire.ManagerConfig(shutdown_timeout=-5))
    assert manager_level.value.message.startswith("shutdown_timeout:")
