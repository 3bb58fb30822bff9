"""The plugin side: serving a plugin on stdio or gRPC, and the typed payload codec.

Imports layers 0-2 only, like the SDK it re-exports: a plugin process loads no host code.
`serve` is also at the top level (`plugwire.serve`).
"""

from __future__ import annotations

from ._codec import TypedCodec as TypedCodec
from ._sdk.grpc_server import GrpcPluginServer as GrpcPluginServer
from ._sdk.grpc_server import serve_grpc as serve_grpc
from ._sdk.serve import serve as serve

__all__ = ["GrpcPluginServer", "TypedCodec", "serve", "serve_grpc"]
