"""The plugin side: serving a plugin on stdio or gRPC, the typed payload codec, and the
trace ids for a plugin's log records (stdlib, structlog, loguru; docs/observability.md).

Imports layers 0-2 only, like the SDK it re-exports: a plugin process loads no host code.
`serve` is also at the top level (`plugwire.serve`).
"""

from __future__ import annotations

from ._codec import TypedCodec as TypedCodec
from ._sdk.grpc_server import GrpcPluginServer as GrpcPluginServer
from ._sdk.grpc_server import serve_grpc as serve_grpc
from ._sdk.logs import TraceIdsFilter as TraceIdsFilter
from ._sdk.logs import add_trace_ids as add_trace_ids
from ._sdk.logs import loguru_trace_ids as loguru_trace_ids
from ._sdk.serve import serve as serve
from ._sdk.tracing import current_trace_ids as current_trace_ids

__all__ = [
    "GrpcPluginServer",
    "TraceIdsFilter",
    "TypedCodec",
    "add_trace_ids",
    "current_trace_ids",
    "loguru_trace_ids",
    "serve",
    "serve_grpc",
]
