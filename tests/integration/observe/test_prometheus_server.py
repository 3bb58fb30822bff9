"""A real Prometheus server (Debian's `prometheus` package) scrapes a running manager's
exporter, and PromQL through its HTTP API returns the request count of each plugin.

Skipped, saying why, where the binary is absent (`.ci/run` installs it when it runs as root).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import plugwire
from plugwire import ExecutionContext, PrometheusConfig, PrometheusExporter
from tests.support import grafana
from tests.support.echo_types import Req, Resp
from tests.support.procguard import python_plugin

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

pytestmark = [
    pytest.mark.usefixtures("no_leaks"),
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not Path(PROMETHEUS).is_file(),
        reason="no prometheus binary (Debian: apt-get install prometheus; .ci/run installs it as root)",
    ),
]

READY_WITHIN = 60.0  # seconds for Prometheus to open its TSDB and serve
SCRAPED_WITHIN = 60.0  # seconds for the expected value to be scraped (every second) and queryable


class Echo(plugwire.Plugin[Req, Resp]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo", version="1.0.0")

    async def execute(self, ctx: ExecutionContext, request: Req) -> Resp:
        if request.op == "fail":
            raise RuntimeError(request.text)
        return Resp(text=request.text)


def get_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2):
        pass


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class PrometheusServer:
    """`prometheus` on a loopback port with a temporary config and data folder."""

    def __init__(self, folder: Path, port: int, target: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = folder / "prometheus.log"
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: plugwire\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.args = [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        async with asyncio.timeout(READY_WITHIN):
            while not await self._ready():
                if self.process.returncode is not None:
                    pytest.fail(f"prometheus exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)  # an outside process: nothing to wait on but its answer

    async def _ready(self) -> bool:
        try:
            await asyncio.to_thread(get_ok, f"{self.base}/-/ready")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        answer = await asyncio.to_thread(get_json, url)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    async def wait_for(self, promql: str, expected: dict[str, float], label: str = "plugin") -> None:
        """Poll the query until each series' `label` has the expected value (bounded)."""
        seen: dict[str, float] = {}
        try:
            async with asyncio.timeout(SCRAPED_WITHIN):
                while True:
                    seen = {row["metric"].get(label, ""): float(row["value"][1]) for row in await self.query(promql)}
                    if seen == expected:
                        return
                    await asyncio.sleep(0.25)  # the next scrape is at most a second away
        except TimeoutError:
            pytest.fail(
                f"{promql}: expected {expected}, Prometheus still says {seen}; log: {self.log.read_text()[-2000:]}"
            )


async def test_a_real_prometheus_scrapes_the_exporter_and_promql_returns_each_plugins_count(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    exporter = PrometheusExporter(PrometheusConfig(namespace="myapp", subsystem="plugins", port=0))
    builder = (
        plugwire.simple(Req, Resp)
        .with_retry(max_retries=0)
        .with_plugin("echo", Echo())
        .with_plugin("proc", python_plugin("echo_plugin.py"))
    )
    async with builder.build() as manager:
        await manager.register_metrics_exporter(exporter)
        server = PrometheusServer(tmp_path, unused_tcp_port, f"127.0.0.1:{exporter.port}")
        try:
            await server.start()
            for index in range(5):
                await manager.execute("echo", Req(text=str(index)))
            for _ in range(2):
                await manager.execute("proc", Req(text="from a process"))
            with pytest.raises(plugwire.ExecutionError):
                await manager.execute("echo", Req(op="fail", text="no"))

            await server.wait_for('myapp_plugins_plugin_requests_total{plugin="echo"}', {"echo": 6})
            await server.wait_for("myapp_plugins_plugin_requests_total", {"echo": 6, "proc": 2})
            await server.wait_for("sum by (code) (myapp_plugins_plugin_requests_failure_total)", {"1203": 1}, "code")
            await server.wait_for(
                'sum by (plugin) (myapp_plugins_plugin_request_duration_seconds_bucket{le="+Inf"})',
                {"echo": 6, "proc": 2},
            )
            await server.wait_for('myapp_plugins_plugin_processes{transport="executable"}', {"proc": 1})
            # The quantile of a real histogram: a number within the buckets' range.
            rows = await server.query(
                "histogram_quantile(0.99, sum by (le) (myapp_plugins_plugin_request_duration_seconds_bucket))"
            )
            assert len(rows) == 1
            assert 0 < float(rows[0]["value"][1]) <= 10.0
            # Every query of the Grafana dashboard is PromQL this Prometheus accepts (a bad one
            # is answered with HTTP 400, which `query` raises); those without a rate find data.
            for expr in grafana.expressions(grafana.load()):
                rows = await server.query(grafana.expand(expr, "myapp_plugins_"))
                if "rate(" not in expr and "increase(" not in expr:
                    assert rows, expr
            targets = await asyncio.to_thread(get_json, f"{server.base}/api/v1/targets")
            [target] = targets["data"]["activeTargets"]
            assert target["health"] == "up", target
        finally:
            await server.stop()
    assert server.process is not None
    assert server.process.returncode is not None
