"""Tracing (issue 17): what host-side tracing adds to a subprocess round trip.

The same small call to the same subprocess echo plugin, with tracing enabled (plugwire's own
tracer provider, exporting to a local OTLP/HTTP sink) and with tracing off. At
`sample_rate=0` every call passes the two tracing wrappers, which find it sampled out (no
application span is active) and make no span and send no `traceparent`: the target is at
most 5%. At `sample_rate=1` every span is recorded and exported by the SDK's batch thread:
an info row.

As in `policies.py`, both sides call *one* plugin process, lent to each manager, so the
ratio measures only what tracing adds on the host (a lent transport is no subprocess
transport: the plugin process runs without the tracing environment, as it would if its SDK
had no OpenTelemetry installed).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import plugwire

from .._model import Env, Op, Side, at_most, case
from ._plugin import REQUEST, Echo, echo_request, plugin_config
from .policies import _shared_plugin


@contextmanager
def _otlp_sink() -> Iterator[str]:
    """A loopback HTTP server answering every OTLP export with 200 (what a healthy collector
    does, at no cost to measure); yields its base URL."""

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bench-otlp-sink", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@asynccontextmanager
async def _echo_call(env: Env, sample_rate: float | None) -> AsyncIterator[Op]:
    with _otlp_sink() as endpoint:
        async with _shared_plugin(env) as loans, plugwire.AsyncPluginManager(Echo, Echo) as manager:
            await manager.register(loans, config=plugin_config("echo"))
            if sample_rate is not None:
                config = plugwire.TracingConfig(service_name="bench", endpoint=endpoint, sample_rate=sample_rate)
                await manager.enable_tracing(config)
            if await manager.execute("echo", REQUEST) != REQUEST:
                raise RuntimeError("the subprocess echo plugin answered with a different message")
            yield partial(manager.execute, "echo", echo_request())


_OFF = Side("subprocess call, tracing off", partial(_echo_call, sample_rate=None))


@case(
    "tracing.subprocess.sampled_out",
    label="subprocess call, tracing on, sample_rate=0",
    baseline=_OFF,
    target=at_most(1.05),
    requires=("opentelemetry.sdk",),
    note="issue 17: tracing enabled at sample_rate=0 (each new trace sampled out: no span, no traceparent "
    "sent) adds at most 5% to a subprocess call; both through the same plugin process.",
)
@asynccontextmanager
async def tracing_sampled_out(env: Env) -> AsyncIterator[Op]:
    async with _echo_call(env, 0.0) as op:
        yield op


@case(
    "tracing.subprocess.sampled",
    label="subprocess call, tracing on, sample_rate=1",
    baseline=_OFF,
    target=None,
    requires=("opentelemetry.sdk",),
    note="issue 17 (info): every call's two spans recorded and exported over OTLP/HTTP to a local sink "
    "by the SDK's batch thread.",
)
@asynccontextmanager
async def tracing_sampled(env: Env) -> AsyncIterator[Op]:
    async with _echo_call(env, 1.0) as op:
        yield op
