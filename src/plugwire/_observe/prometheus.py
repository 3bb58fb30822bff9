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
import dataclasses
import errno
import logging
import math
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._codes import ErrorCode
from .._config import PrometheusEndpointConfig, is_host
from .._errors import ConfigError, ExporterError, MissingDependencyError, ObservabilityError
from .metrics import MetricsSource
from .prometheus_collector import SnapshotCollector

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.registry import CollectorRegistry

__all__ = ["PROMETHEUS_EXTRA_HINT", "PrometheusConfig", "PrometheusExporter", "exporter_from_config"]

PROMETHEUS_EXTRA_HINT = "pip install 'plugwire[prometheus]'"

_log = logging.getLogger("plugwire.observe")

#: A part of a metric name: Prometheus's `[a-zA-Z_][a-zA-Z0-9_]*` (colons are for recording
#: rules, and a leading `__` is reserved for Prometheus's own names).
_NAME_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
    if not is_host(address):
        raise _bad(
            "address",
            f"{address!r} is not an IP address or host name (no scheme, port or brackets: e.g. "
            "'127.0.0.1', '0.0.0.0', '::', 'localhost')",
        )


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
        self._collector = SnapshotCollector(config.prefix, config.snapshot_timeout)
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
        """Stop serving: the collector leaves the registry, and the HTTP server is shut down
        and its port released (its thread joined, at most 5 s). Idempotent."""
        if self._started:  # first: a close cut short still leaves the registry clean
            self._started = False
            self.registry.unregister(self._collector)
            self._collector.detach()
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None and thread is not None:
            # `shutdown` waits for the server's poll loop (up to half a second): not on the loop.
            await asyncio.to_thread(_stop_server, server, thread)


def _stop_server(server: WSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(_SERVER_JOIN)
    if thread.is_alive():
        _log.error("the Prometheus exporter's HTTP server thread did not end within %gs", _SERVER_JOIN)


def exporter_from_config(config: PrometheusEndpointConfig) -> PrometheusExporter:
    """The exporter a config's `metrics.prometheus` section asks the manager to serve.

    Raises:
        MissingDependencyError: prometheus-client is not installed (1011); the message names
            the config key and the extra.
    """
    settings = PrometheusConfig(
        namespace=config.namespace,
        subsystem=config.subsystem,
        port=config.port,
        address=config.address,
        snapshot_timeout=config.snapshot_timeout,
    )
    try:
        return PrometheusExporter(settings)
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"metrics.prometheus.enabled: serving the Prometheus endpoint needs the prometheus extra: "
            f"{PROMETHEUS_EXTRA_HINT}",
            details={"extra": "prometheus"},
        ) from exc.__cause__
