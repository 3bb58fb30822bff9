"""Uses the public API the way a user would; checked by `mypy --strict` in `make test`."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import assert_type

import plugwire
from plugwire import ExecutionContext, HealthStatus, Plugin, PluginInfo, Status


@dataclasses.dataclass
class Req:
    text: str


@dataclasses.dataclass
class Resp:
    words: int


class Counter(Plugin[Req, Resp]):
    def info(self) -> PluginInfo:
        return PluginInfo(name="counter", version="1.0.0")

    async def execute(self, ctx: ExecutionContext, request: Req) -> Resp:
        return Resp(words=len(request.text.split()))


async def async_usage() -> None:
    manager = plugwire.development(Req, Resp).with_plugin("counter", Counter()).with_timeout(5).build()
    assert_type(manager, plugwire.AsyncPluginManager[Req, Resp])
    async with manager:
        response = await manager.execute("counter", Req("a b c"), ExecutionContext(timeout=1.0))
        assert_type(response, Resp)
        health = await manager.health()
        assert_type(health, dict[str, HealthStatus])
        info = manager.get_plugin("counter").info()
        assert_type(info, PluginInfo)
        statuses = manager.list_plugins()
        if statuses["counter"].status is not Status.HEALTHY:
            raise SystemExit(1)
    try:
        await manager.execute("counter", Req("x"))
    except plugwire.PluginError as exc:
        assert_type(exc.code, int)
        assert_type(exc.request_sent, plugwire.errors.RequestSent)
        if exc.request_sent is plugwire.errors.RequestSent.MAYBE:  # the work may be done: reconcile first
            raise


def blocking_usage() -> int:
    with plugwire.simple(Req, Resp).with_plugin("counter", plugwire.in_process(Counter())).build_blocking() as m:
        result = m.execute("counter", Req("one two"))
        assert_type(result, Resp)
        return result.words


async def host() -> int:
    async with plugwire.simple(Req, Resp).with_plugin("counter", plugwire.in_process(Counter())).build() as m:
        try:
            return (await m.execute("counter", Req("one two"))).words
        except plugwire.errors.ManagerNotStartedError as exc:
            assert_type(exc.code, int)
            raise


def run_usage() -> None:
    assert_type(plugwire.run(host), int)
    assert_type(plugwire.run(host()), int)
    assert_type(plugwire.run(blocking_usage), int)
    assert_type(plugwire.run(lambda: "done"), str)


def config_usage() -> plugwire.ManagerConfig:
    config = plugwire.default_manager_config()
    plugin = plugwire.PluginConfig(
        name="auth",
        transport=plugwire.Transport.EXECUTABLE,
        executable="./auth",
        retry=plugwire.RetryConfig(max_retries=5),
        auth=plugwire.AuthConfig(method=plugwire.AuthMethod.API_KEY, api_key="k"),
    )
    return plugwire.ManagerConfig(plugins=(plugin,), log_level=config.log_level)


if __name__ == "__main__":
    asyncio.run(async_usage())
    blocking_usage()
    run_usage()
    config_usage()


async def discovery_usage() -> list[str]:
    manager = plugwire.auto(Req, Resp).from_directory("./plugins").with_pattern("*-plugin").watch().build()
    assert_type(manager, plugwire.AsyncPluginManager[Req, Resp])
    async with manager:
        if manager.discovery is None:
            return []
        report = await manager.discovery.rescan()
        for refusal in report.refused:
            assert_type(refusal.code, int)
        return [plugin.info.version for plugin in report.registered.values()]


async def goplugin_usage() -> object:
    handshake = plugwire.goplugin.HandshakeConfig(1, "BASIC_PLUGIN", "hello")
    options = plugwire.goplugin.GoPluginOptions(grace=1.0)
    source = plugwire.goplugin("./kv-plugin", handshake=handshake, service="proto.KV", options=options)
    assert isinstance(source, plugwire.PluginSource)
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(source, name="kv")
        return manager.channel("kv")  # a grpc.aio.Channel (grpc has no type stubs)
