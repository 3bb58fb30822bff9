"""The in-process transport: a plugin object in the host's own process.

By default requests and responses still go through the codec, so the boundary behaves
exactly like a remote one (a wrong shape is refused the same way); `codec=False` passes
objects straight through for speed.
"""

from __future__ import annotations

from typing import Any

from .._errors import ExecutionError, PluginError, answered
from .._models import HealthStatus, PluginInfo, Transport
from .._sdk.adapter import PluginAdapter
from .base import BaseTransport, Call

__all__ = ["InProcessTransport"]


class InProcessTransport(BaseTransport):
    """Calls a plugin object directly, on the host's event loop (or worker threads for `def`)."""

    kind = Transport.IN_PROCESS
    # Closing the object and starting it again would not make a sick object well (and would
    # stop its worker threads), so the health monitor does not restart in-process plugins.
    restartable = False

    def __init__(self, plugin: Any, *, request_type: Any = None, codec: bool = True) -> None:
        self.adapter = PluginAdapter(plugin, request_type=request_type)
        self.use_codec = codec
        self._info: PluginInfo | None = None

    @property
    def wants_bytes(self) -> bool:  # type: ignore[override]
        return self.use_codec

    async def start(self) -> PluginInfo:
        if self._info is None:
            self._info = self.adapter.info()
        return self._info

    async def call(self, call: Call) -> Any:
        try:
            if self.use_codec:
                return await self.adapter.execute(call.context, call.payload, call.codec)
            return await self.adapter.execute_object(call.context, call.payload)
        except PluginError as exc:  # the plugin's answer, as over a wire (`request_sent`)
            exc.request_sent = answered(exc.code)
            raise

    async def health(self) -> HealthStatus:
        return await self.adapter.health()

    async def aclose(self) -> None:
        try:
            await self.adapter.close()
        except PluginError:
            raise
        except Exception as exc:
            raise ExecutionError(f"close() failed: {type(exc).__name__}: {exc}") from exc
