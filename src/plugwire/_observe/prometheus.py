"""The Prometheus exporter (README `NewPrometheusExporter`): the metrics snapshot as
Prometheus series, read at scrape time, served by prometheus-client's own HTTP server or
mounted in the application's ASGI or WSGI app.

Scraping costs the call path nothing: a scrape takes one `ManagerMetrics` snapshot (on the
manager's event loop, where the counters live) and turns it into metric families; nothing is
recorded into prometheus-client objects per call. The module imports prometheus-client only
when an exporter is made, so `plugwire.observe` stays importable without the extra.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import errno
import ipaddress
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._codes import ErrorCode
from .._errors import ConfigError, ExporterError, MissingDependencyError, ObservabilityError
from .._models import Status
from .metrics import ManagerMetrics, MetricsSource, PluginMetrics

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["PROMETHEUS_EXTRA_HINT", "SERIES", "PrometheusConfig", "PrometheusExporter", "Series"]

PROMETHEUS_EXTRA_HINT = "pip install 'plugwire[prometheus]'"

_log = logging.getLogger("plugwire.observe")

#: A part of a metric name: Prometheus's `[a-zA-Z_][a-zA-Z0-9_]*` (colons are for recording
#: rules, and a leading `__` is reserved for Prometheus's own names).
_NAME_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_SERVER_JOIN = 5.0  # seconds `aclose` waits for the HTTP server's thread to end


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PrometheusConfig:
    """How the Prometheus exporter names its series and where it serves them (README
    `PrometheusConfig{Namespace, Subsystem, Port}`).

    Every series is named `<namespace>_<subsystem>_<metric>` (an empty part is left out):
    with the defaults `plugwire_plugin_requests_total`; with the README's
    `namespace="myapp", subsystem="plugins"`, `myapp_plugins_plugin_requests_total`.

    Attributes:
        namespace: The first part of every series name: letters, digits and `_`, not
            starting with a digit or `__`; may be empty.
        subsystem: The second part, same rules; may be empty.
        port: The port of the exporter's own HTTP server (`/metrics`, any path in fact);
            0 picks a free one (`exporter.port` tells which). None (the default): no server,
            mount `exporter.asgi_app()` or `exporter.wsgi_app()` in your app instead.
        address: The address that server listens on. Loopback by default: the series name
            every plugin and its error codes, which is not for every host on the network to
            read; give "0.0.0.0" (or "::") where a Prometheus on another host scrapes it.
        snapshot_timeout: Seconds a scrape from another thread waits for the manager's event
            loop to take the snapshot; past it (the loop is blocked) the scrape serves the
            last snapshot taken instead of hanging.

    Raises:
        ConfigError: A value is invalid; the message names the field
            (`PrometheusConfig.port: ...`), code 1002 (wrong type) or 1003 (bad value).
    """

    namespace: str = "plugwire"
    subsystem: str = ""
    port: int | None = None
    address: str = "127.0.0.1"
    snapshot_timeout: float = 5.0

    def __post_init__(self) -> None:
        for field in ("namespace", "subsystem"):
            _check_name_part(field, getattr(self, field))
        _check_port(self.port)
        _check_address(self.address)
        timeout = self.snapshot_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            got = type(timeout).__name__
            raise _bad("snapshot_timeout", f"expected a number of seconds, got {got}", wrong_type=True)
        if not (math.isfinite(timeout) and timeout > 0):
            raise _bad("snapshot_timeout", f"expected a positive finite number of seconds, got {timeout!r}")

    @property
    def prefix(self) -> str:
        """What every series name starts with: `"plugwire_"`, `"myapp_plugins_"`, or `""`."""
        return "".join(f"{part}_" for part in (self.namespace, self.subsystem) if part)


def _bad(field: str, message: str, *, wrong_type: bool = False) -> ConfigError:
    code = ErrorCode.CONFIG_WRONG_TYPE if wrong_type else ErrorCode.CONFIG_INVALID_VALUE
    return ConfigError(f"PrometheusConfig.{field}: {message}", code=code, details={"field": field})


def _check_name_part(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise _bad(field, f"expected a string, got {type(value).__name__}", wrong_type=True)
    if value and (not _NAME_PART.fullmatch(value) or value.startswith("__")):
        raise _bad(
            field,
            f"{value!r} is not a Prometheus name part: letters, digits and '_', "
            "not starting with a digit or '__' (or empty)",
        )


def _check_port(port: object) -> None:
    if port is None:
        return
    if isinstance(port, bool) or not isinstance(port, int):
        raise _bad("port", f"expected an integer or None, got {type(port).__name__}", wrong_type=True)
    if not 0 <= port <= 65535:
        raise _bad("port", f"expected 0..65535 (0: any free port) or None (no server), got {port}")


def _check_address(address: object) -> None:
    if not isinstance(address, str):
        raise _bad("address", f"expected a string, got {type(address).__name__}", wrong_type=True)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        labels = address.removesuffix(".").split(".")
        if not (address and len(address) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)):
            raise _bad(
                "address",
                f"{address!r} is not an IP address or host name (no scheme, port or brackets: e.g. "
                "'127.0.0.1', '0.0.0.0', '::', 'localhost')",
            ) from None


@dataclasses.dataclass(frozen=True, slots=True)
class Series:
    """One metric family the exporter exposes (docs/observability.md, "Prometheus").

    Attributes:
        name: Its name after the prefix, as scraped (counters end in `_total`).
        kind: "counter", "gauge" or "histogram".
        readme: The README metric it is, or "" for one plugwire adds.
        labels: Its labels: every per-plugin series has `plugin` and `transport`.
        help: Its HELP text.
    """

    name: str
    kind: str
    readme: str
    labels: tuple[str, ...]
    help: str


_PLUGIN = ("plugin", "transport")

#: Every series, in the order a scrape lists them.
SERIES: tuple[Series, ...] = (
    Series("plugin_requests_total", "counter", "plugin_requests_total", _PLUGIN, "Calls made to the plugin."),
    Series(
        "plugin_requests_success_total",
        "counter",
        "plugin_requests_success",
        _PLUGIN,
        "Calls that returned a response.",
    ),
    Series(
        "plugin_requests_failure_total",
        "counter",
        "plugin_requests_failure",
        (*_PLUGIN, "code", "error"),
        "Calls that failed, by plugwire error code.",
    ),
    Series("plugin_requests_cancelled_total", "counter", "", _PLUGIN, "Calls their caller cancelled."),
    Series(
        "plugin_request_duration_seconds",
        "histogram",
        "plugin_request_duration",
        _PLUGIN,
        "Duration of finished calls (succeeded or failed), in seconds.",
    ),
    Series(
        "plugin_circuit_breaker_trips_total",
        "counter",
        "plugin_circuit_breaker_trips",
        _PLUGIN,
        "Times the plugin's circuit breaker opened.",
    ),
    Series(
        "plugin_health_check_failures_total",
        "counter",
        "plugin_health_check_failures",
        _PLUGIN,
        "Health checks that failed.",
    ),
    Series(
        "plugin_status",
        "gauge",
        "plugin_status",
        (*_PLUGIN, "status"),
        "1 for the plugin's current health status, 0 for the others.",
    ),
    Series(
        "plugin_response_time_seconds",
        "gauge",
        "plugin_response_time",
        _PLUGIN,
        "Mean duration of the plugin's finished calls, in seconds.",
    ),
    Series(
        "plugin_error_rate",
        "gauge",
        "plugin_error_rate",
        _PLUGIN,
        "Failed calls over finished calls since the plugin was registered (0 to 1).",
    ),
    Series("plugin_active_requests", "gauge", "plugin_active_requests", _PLUGIN, "Calls in flight."),
    Series("plugin_retries_total", "counter", "", _PLUGIN, "Attempts made after a call's first one."),
    Series("plugin_rate_limited_total", "counter", "", _PLUGIN, "Calls the rate limiter refused (1501)."),
    Series("plugin_circuit_breaker_rejections_total", "counter", "", _PLUGIN, "Calls the open breaker refused (1401)."),
    Series(
        "plugin_circuit_breaker_state",
        "gauge",
        "",
        (*_PLUGIN, "state"),
        "1 for the breaker's current state (closed, open, half-open, disabled), 0 for the others.",
    ),
    Series("plugin_health_checks_total", "counter", "", _PLUGIN, "Health checks made."),
    Series("plugin_health_check_latency_seconds", "gauge", "", _PLUGIN, "Seconds the last health check took."),
    Series(
        "plugin_restarts_total", "counter", "", _PLUGIN, "Plugin processes started again after a crash or failed check."
    ),
    Series("plugin_processes", "gauge", "", _PLUGIN, "Live plugin processes (0 for gRPC and in-process plugins)."),
    Series(
        "metrics_snapshot_timestamp_seconds",
        "gauge",
        "",
        (),
        "When the snapshot this scrape shows was taken (seconds since the epoch); "
        "older than the scrape when the manager's loop could not be reached.",
    ),
)

_STATUSES = tuple(status.value for status in Status)
_BREAKER_STATES = ("closed", "open", "half-open", "disabled")

# The value of each one-number-per-plugin series.
_VALUES: dict[str, Callable[[PluginMetrics], float]] = {
    "plugin_requests_total": lambda p: p.requests_total,
    "plugin_requests_success_total": lambda p: p.requests_success,
    "plugin_requests_cancelled_total": lambda p: p.requests_cancelled,
    "plugin_circuit_breaker_trips_total": lambda p: p.circuit_breaker_trips,
    "plugin_health_check_failures_total": lambda p: p.health_check_failures,
    "plugin_response_time_seconds": lambda p: p.response_time,
    "plugin_error_rate": lambda p: p.error_rate,
    "plugin_active_requests": lambda p: p.active_requests,
    "plugin_retries_total": lambda p: p.retries,
    "plugin_rate_limited_total": lambda p: p.rate_limited,
    "plugin_circuit_breaker_rejections_total": lambda p: p.circuit_breaker_rejections,
    "plugin_health_checks_total": lambda p: p.health_checks,
    "plugin_health_check_latency_seconds": lambda p: p.health_check_latency,
    "plugin_restarts_total": lambda p: p.restarts,
    "plugin_processes": lambda p: p.processes,
}


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower()
    except ValueError:  # a code a plugin in another language made up
        return "unknown"


def _le(bound: float) -> str:
    """A bucket's `le` label as Prometheus clients write it: "0.25", "1.0", "+Inf"."""
    return "+Inf" if bound == math.inf else repr(float(bound))


def _load_client() -> None:
    """Check that prometheus-client can be imported.

    Raises:
        MissingDependencyError: It is not installed (1011); the message names the extra.
    """
    try:
        import prometheus_client.asgi
        import prometheus_client.exposition
        import prometheus_client.metrics_core
        import prometheus_client.registry  # noqa: F401 - imported here to fail early and clearly
    except ImportError as exc:
        raise MissingDependencyError(
            f"the Prometheus exporter needs the prometheus extra: {PROMETHEUS_EXTRA_HINT} ({exc})",
            details={"extra": "prometheus"},
        ) from exc


class _SnapshotCollector:
    """A prometheus-client collector (`collect`, `describe`) over one manager's snapshots.

    `collect` runs in whichever thread serves the scrape: prometheus-client's HTTP server
    threads, a WSGI server's, or the event loop of an ASGI app. The snapshot itself is always
    taken on the manager's loop, which owns the counters: directly when the scrape runs there,
    otherwise handed to it with `call_soon_threadsafe` and waited for, at most
    `snapshot_timeout`. When the loop is stopped, closed or too busy, the last snapshot is
    served again (its timestamp series says how old it is); a scrape never hangs.
    """

    def __init__(self, prefix: str, timeout: float) -> None:
        self.prefix = prefix
        self.timeout = timeout
        self._lock = threading.Lock()
        self._source: MetricsSource | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last: ManagerMetrics | None = None

    def attach(self, source: MetricsSource, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._source, self._loop = source, loop

    def detach(self) -> None:
        with self._lock:
            self._source = self._loop = None

    def snapshot(self) -> ManagerMetrics | None:
        """A fresh snapshot, or the last one when the manager's loop cannot give one."""
        with self._lock:
            source, loop = self._source, self._loop
        if source is None or loop is None:
            return self.last
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        try:
            if on_loop:
                taken = source()
            elif loop.is_closed() or not loop.is_running():
                return self.last
            else:
                taken = self._from_loop(source, loop)
        except concurrent.futures.TimeoutError:
            _log.warning(
                "Prometheus scrape: the manager's event loop did not take a snapshot within %gs; serving the last one",
                self.timeout,
            )
            return self.last
        except Exception:
            _log.exception("Prometheus scrape: the metrics snapshot failed; serving the last one")
            return self.last
        with self._lock:
            self.last = taken
        return taken

    def _from_loop(self, source: MetricsSource, loop: asyncio.AbstractEventLoop) -> ManagerMetrics:
        result: concurrent.futures.Future[ManagerMetrics] = concurrent.futures.Future()

        def take() -> None:
            if not result.set_running_or_notify_cancel():
                return  # the scrape gave up waiting
            try:
                result.set_result(source())
            except Exception as exc:
                result.set_exception(exc)

        try:
            loop.call_soon_threadsafe(take)
        except RuntimeError:  # closed since we looked
            raise concurrent.futures.TimeoutError from None
        try:
            return result.result(self.timeout)
        finally:
            result.cancel()

    def describe(self) -> Iterator[Metric]:
        """The families without samples: what the registry checks for clashing names (so
        registering never takes a snapshot)."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        """Every series, from one snapshot."""
        snapshot = self.snapshot()
        if snapshot is None:
            return
        yield from self._families(snapshot)

    def _families(self, snapshot: ManagerMetrics | None = None) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        plugins = list(snapshot.plugins.values()) if snapshot is not None else []
        for series in SERIES:
            name = self.prefix + series.name
            family: Any
            if series.kind == "counter":
                family = CounterMetricFamily(name, series.help, labels=series.labels)
            elif series.kind == "gauge":
                family = GaugeMetricFamily(name, series.help, labels=series.labels)
            else:
                family = HistogramMetricFamily(name, series.help, labels=series.labels)
            value = _VALUES.get(series.name)
            for plugin in plugins:
                labels = (plugin.name, plugin.transport)
                if value is not None:
                    family.add_metric(labels, value(plugin))
                elif series.name == "plugin_requests_failure_total":
                    for code, count in sorted(plugin.failures_by_code.items()):
                        family.add_metric((*labels, str(code), _error_name(code)), count)
                elif series.name == "plugin_request_duration_seconds":
                    duration = plugin.duration
                    buckets = [
                        ("+Inf" if bound == math.inf else repr(bound), count) for bound, count in duration.cumulative()
                    ]
                    family.add_metric(labels, buckets, duration.sum)
                elif series.name == "plugin_status":
                    for status in _STATUSES:
                        family.add_metric((*labels, status), 1.0 if plugin.status == status else 0.0)
                elif series.name == "plugin_circuit_breaker_state":
                    for state in _BREAKER_STATES:
                        family.add_metric((*labels, state), 1.0 if plugin.circuit_breaker_state == state else 0.0)
            if series.name == "metrics_snapshot_timestamp_seconds" and snapshot is not None:
                family.add_metric((), snapshot.taken_at)
            yield family


class PrometheusExporter:
    """The manager's metrics as Prometheus series (README `NewPrometheusExporter`).

    Register it with `manager.register_metrics_exporter(exporter)`: that turns metrics on,
    registers its collector in its registry, and starts the HTTP server when the config has a
    port; the manager's shutdown closes it (server stopped, port free). Or mount
    `exporter.asgi_app()` / `exporter.wsgi_app()` at `/metrics` in your own app.

    Every scrape reads one `ManagerMetrics` snapshot; series and names are listed in
    docs/observability.md, "Prometheus".

    Args:
        config: Names and server (`PrometheusConfig`); the defaults without it.
        registry: The `prometheus_client.CollectorRegistry` to register in: e.g. the global
            `prometheus_client.REGISTRY`, to serve plugwire's series beside your own. Without
            it the exporter has a registry of its own, so two managers in one process never
            collide.

    Raises:
        MissingDependencyError: prometheus-client is not installed (1011).
        ConfigError: `config` is not a `PrometheusConfig`, or `registry` not a registry (1002).
    """

    def __init__(self, config: PrometheusConfig | None = None, *, registry: CollectorRegistry | None = None) -> None:
        _load_client()
        from prometheus_client.registry import CollectorRegistry

        if config is None:
            config = PrometheusConfig()
        elif not isinstance(config, PrometheusConfig):
            raise ConfigError(
                f"PrometheusExporter: expected a PrometheusConfig, got {type(config).__name__}",
                code=ErrorCode.CONFIG_WRONG_TYPE,
            )
        if registry is None:
            registry = CollectorRegistry()
        elif not isinstance(registry, CollectorRegistry):
            raise ConfigError(
                "PrometheusExporter: registry must be a prometheus_client.CollectorRegistry, "
                f"got {type(registry).__name__}",
                code=ErrorCode.CONFIG_WRONG_TYPE,
            )
        self.config = config
        #: The registry its collector is registered in while it runs (what the apps serve).
        self.registry = registry
        self._collector = _SnapshotCollector(config.prefix, config.snapshot_timeout)
        self._started = False
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = f"{self.config.address}:{self.port}" if self._server is not None else "no server"
        return f"<PrometheusExporter prefix={self.config.prefix!r} {where}>"

    @property
    def port(self) -> int | None:
        """The port its HTTP server listens on (the one picked when the config said 0);
        None before `start`, after `aclose`, or without a server."""
        return self._server.server_port if self._server is not None else None

    @property
    def url(self) -> str | None:
        """Where its HTTP server serves the series (`http://127.0.0.1:9464/metrics`), or None."""
        if self._server is None:
            return None
        host = self.config.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    def wsgi_app(self) -> Callable[..., Any]:
        """A WSGI app serving the series (prometheus-client's `make_wsgi_app` over its registry)."""
        from prometheus_client.exposition import make_wsgi_app

        return make_wsgi_app(self.registry)

    def asgi_app(self) -> Callable[..., Any]:
        """An ASGI app serving the series (prometheus-client's `make_asgi_app` over its registry).

        Run on the manager's event loop, a scrape takes its snapshot directly; on another
        loop it waits for the manager's loop (at most `snapshot_timeout`).
        """
        from prometheus_client.asgi import make_asgi_app

        return make_asgi_app(self.registry)

    async def start(self, source: MetricsSource) -> None:
        """Serve `source`'s snapshots (called by `manager.register_metrics_exporter`).

        The running loop is the manager's: scrapes take their snapshot on it.

        Raises:
            ObservabilityError: It serves a manager already (2104).
            ExporterError: Its port is in use (2103), its address cannot be listened on, or
                its series names clash with a collector already in `registry` (2102).
        """
        if self._started:
            raise ObservabilityError(
                "this PrometheusExporter serves a manager already: make one exporter per manager",
                code=ErrorCode.EXPORTER_ALREADY_REGISTERED,
            )
        self._collector.attach(source, asyncio.get_running_loop())
        try:
            self.registry.register(self._collector)
        except ValueError as exc:  # prometheus-client's DuplicateTimeseries
            self._collector.detach()
            raise ExporterError(
                f"PrometheusExporter: its series clash with a collector already in the registry "
                f"(give this exporter another namespace or subsystem): {exc}"
            ) from exc
        self._started = True
        if self.config.port is not None:
            try:
                self._serve()
            except BaseException:
                self.registry.unregister(self._collector)
                self._collector.detach()
                self._started = False
                raise

    def _serve(self) -> None:
        from prometheus_client.exposition import start_http_server

        address, port = self.config.address, self.config.port
        assert port is not None
        try:
            server, thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            details = {"address": address, "port": port}
            if exc.errno == errno.EADDRINUSE:
                raise ExporterError(
                    f"PrometheusExporter: {address}:{port} is in use: give another port, or 0 for any free one",
                    code=ErrorCode.EXPORTER_ADDRESS_IN_USE,
                    details=details,
                ) from exc
            raise ExporterError(
                f"PrometheusExporter: cannot listen on {address}:{port}: {exc}", details=details
            ) from exc
        # Named like plugwire's threads: `aclose` stops it.
        thread.name = f"plugwire-prometheus-{server.server_port}"
        self._server, self._thread = server, thread

    async def aclose(self) -> None:
        """Stop serving: the HTTP server is shut down and its port released (its thread
        joined, at most 5 s), and the collector leaves the registry. Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None and thread is not None:
            # `shutdown` waits for the server's poll loop (up to half a second): not on the loop.
            await asyncio.to_thread(_stop_server, server, thread)
        if self._started:
            self._started = False
            self.registry.unregister(self._collector)
            self._collector.detach()


def _stop_server(server: WSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(_SERVER_JOIN)
    if thread.is_alive():
        _log.error("the Prometheus exporter's HTTP server thread did not end within %gs", _SERVER_JOIN)
