"""The transport interface: how the manager hands one encoded call to a plugin."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Any, ClassVar

from .._call import Call, attempt_timed_out
from .._models import HealthStatus, PluginInfo, Transport

__all__ = ["BaseTransport", "Call", "attempt_timed_out"]


class BaseTransport(abc.ABC):
    """A connection to one plugin: start it, call it, check it, close it.

    Implementations translate every lower-level failure into a `PluginError` at this
    boundary; nothing from grpc, OSError or msgspec reaches the caller untranslated.
    """

    kind: ClassVar[Transport]
    #: False when `call` takes and returns Python objects instead of encoded bytes.
    wants_bytes: ClassVar[bool] = True
    #: False when `restart()` cannot recover the plugin (an object in the host's own process);
    #: the health monitor then takes a failing plugin offline instead of restarting it.
    restartable: ClassVar[bool] = True
    #: True when `call` itself bounds each attempt by `Call.timeout` on the event loop's clock:
    #: past it, the call fails with `attempt_timed_out(call)` (1204) and the plugin is told to
    #: stop (it says whether the request had been sent: `request_sent`). The timeout policy
    #: then sets no timer of its own (a timer per call is a measurable share of a fast
    #: transport's round trip).
    enforces_timeout: ClassVar[bool] = False

    @abc.abstractmethod
    async def start(self) -> PluginInfo:
        """Connect to (or spawn) the plugin and return what it says about itself."""

    @abc.abstractmethod
    async def call(self, call: Call) -> Any:
        """Deliver one call and return the plugin's encoded response.

        Every `PluginError` it raises says whether the request may have reached the plugin
        (`request_sent`: `NO` before it was handed to the connection, `MAYBE` after, `YES`
        for the plugin's own error answer); the retry policy repeats a `MAYBE` failure only
        for an idempotent call.
        """

    @abc.abstractmethod
    async def health(self) -> HealthStatus:
        """Ask the plugin for its health."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop the plugin or disconnect from it; safe to call more than once."""

    def processes(self) -> int:
        """Live plugin processes this transport runs now (0: it runs none)."""
        return 0

    def crash_restarts(self) -> int:
        """Processes its own supervisor started again after a crash (0 without one)."""
        return 0

    async def restart(self) -> PluginInfo:
        """Recover a failing plugin: by default close it and start it again.

        Transports with cheaper or safer recovery (a supervisor, a reconnect) override it.
        """
        await self.aclose()
        return await self.start()

    async def __aenter__(self) -> PluginInfo:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
