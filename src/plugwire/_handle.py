"""`PluginHandle`: a registered plugin as seen through its manager (the README's `GetPlugin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._models import ExecutionContext, HealthStatus, Plugin, PluginInfo
from ._types import ReqT, RespT

if TYPE_CHECKING:
    from ._manager import AsyncPluginManager

__all__ = ["PluginHandle"]


class PluginHandle(Plugin[ReqT, RespT]):
    """A registered plugin as seen through its manager (the README's `GetPlugin`)."""

    def __init__(self, manager: AsyncPluginManager[ReqT, RespT], name: str, info: PluginInfo) -> None:
        self._manager = manager
        self.name = name
        self._info = info

    def info(self) -> PluginInfo:
        return self._info

    async def execute(self, ctx: ExecutionContext, request: ReqT) -> RespT:
        return await self._manager.execute(self.name, request, ctx)

    async def health(self) -> HealthStatus:
        return await self._manager._check(self.name)

    async def close(self) -> None:
        await self._manager.unregister(self.name)
