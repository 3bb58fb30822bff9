"""Policies around every call, each in its own module, composed by `build_pipeline`."""

from __future__ import annotations

from collections.abc import Sequence

from .._config import PluginConfig
from .chain import Handler, Policy, compose
from .timeout import TimeoutPolicy

__all__ = ["Handler", "Policy", "TimeoutPolicy", "build_pipeline", "compose"]


def build_pipeline(config: PluginConfig, terminal: Handler, *, extra: Sequence[Policy] = ()) -> Handler:
    """The call path for one plugin, outermost first: user policies, then timeout.

    Args:
        config: The plugin's configuration (its `connection.request_timeout` and friends).
        terminal: Delivers the call to the transport.
        extra: User-supplied policies; they run outside the built-in ones, in order.
    """
    policies: list[Policy] = [*extra, TimeoutPolicy(config.connection.request_timeout)]
    return compose(policies, terminal)
