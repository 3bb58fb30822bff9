"""The Prometheus endpoint a config file asks for (`metrics.prometheus`): the manager serves
it from its start to its shutdown, scraped over real HTTP; a port in use fails the start
(2103); a missing extra fails the manager's construction (1011) with the command to run."""

from __future__ import annotations

import asyncio
import socket
import sys
import urllib.error
import urllib.request

import pytest

import plugwire
from plugwire import ExecutionContext
from plugwire.config import ManagerConfig, PrometheusEndpointConfig
from plugwire.errors import ErrorCode, ExporterError, MissingDependencyError
from tests.support.echo_types import Req, Resp

pytestmark = [pytest.mark.usefixtures("no_leaks"), pytest.mark.timeout(60)]


class Echo(plugwire.Plugin[Req, Resp]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo", version="1.0.0")

    async def execute(self, ctx: ExecutionContext, request: Req) -> Resp:
        return Resp(text=request.text)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


def config(**prometheus: object) -> ManagerConfig:
    return ManagerConfig.from_dict({"metrics": {"prometheus": {"enabled": True, "port": 0, **prometheus}}})


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])


async def test_the_endpoint_a_config_asks_for_serves_the_calls_from_start_to_shutdown() -> None:
    manager = plugwire.AsyncPluginManager(Req, Resp, config(namespace="myapp", subsystem="plugins"))
    assert manager.metrics_url is None  # not started yet
    async with manager:
        url = manager.metrics_url
        assert url is not None
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/metrics")
        assert manager.metrics_enabled  # the endpoint turned the counting on
        await manager.register(Echo(), name="echo")
        await manager.execute("echo", Req(text="hi"))
        await manager.execute("echo", Req(text="again"))
        text = await asyncio.to_thread(fetch, url)  # from another thread, as Prometheus scrapes
        assert 'myapp_plugins_plugin_requests_total{plugin="echo",transport="in-process"} 2.0' in text
    assert manager.metrics_url is None
    with socket.socket() as probe:  # the port is free again (SO_REUSEADDR, as servers set it: the
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # scrape's TIME_WAIT may remain)
        probe.bind(("127.0.0.1", port_of(url)))
        probe.listen()


async def test_a_port_in_use_fails_the_start_with_2103_and_leaves_nothing_running() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        manager = plugwire.AsyncPluginManager(Req, Resp, config(port=port))
        with pytest.raises(ExporterError) as caught:
            async with manager:
                pytest.fail("the manager started on a port in use")
    assert caught.value.code == ErrorCode.EXPORTER_ADDRESS_IN_USE
    assert f"127.0.0.1:{port} is in use" in str(caught.value)
    assert manager.metrics_url is None


def test_the_blocking_manager_serves_the_endpoint_too() -> None:
    with plugwire.PluginManager(Req, Resp, config()) as manager:
        manager.register(Echo(), name="echo")
        manager.execute("echo", Req(text="hi"))
        url = manager.metrics_url
        assert url is not None
        assert 'plugwire_plugin_requests_total{plugin="echo",transport="in-process"} 1.0' in fetch(url)
    assert manager.metrics_url is None
    with pytest.raises(urllib.error.URLError):
        fetch(url)


def test_without_the_prometheus_extra_the_manager_is_not_built_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what an environment without it imports
    with pytest.raises(MissingDependencyError) as caught:
        plugwire.AsyncPluginManager(Req, Resp, config())
    assert caught.value.code == ErrorCode.MISSING_DEPENDENCY
    assert "metrics.prometheus.enabled" in str(caught.value)
    assert "pip install 'plugwire[prometheus]'" in str(caught.value)


def test_an_endpoint_left_off_starts_nothing() -> None:
    assert PrometheusEndpointConfig().enabled is False
    manager = plugwire.AsyncPluginManager(Req, Resp, ManagerConfig())
    assert manager.metrics_url is None
    assert not manager.metrics_enabled


async def test_the_endpoint_is_read_at_start_a_reload_that_changes_it_says_so() -> None:
    async with plugwire.AsyncPluginManager(Req, Resp, config()) as manager:
        url = manager.metrics_url
        report = await manager.reload_config(config(namespace="other"))
        assert report.not_applied == ("metrics",)
        assert manager.metrics_url == url
        assert "plugwire_metrics_snapshot_timestamp_seconds" in await asyncio.to_thread(fetch, url)
