"""HashiCorp go-plugin interoperability: `plugwire.goplugin(...)` loads a go-plugin plugin into
a plugwire host; `plugwire.goplugin.serve(...)` serves Python servicers to a Go host.

This module is also callable: `plugwire.goplugin(executable, *args, handshake=..., service=...)`
is the plugin source of a go-plugin plugin (see `GoPlugin`). Importing it loads no host code
(a plugin process imports it to serve): every name is loaded on first use.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._goplugin.handshake import HandshakeConfig
    from ._goplugin.handshake import HandshakeConfig as _Handshake
    from ._goplugin.serve import serve
    from ._goplugin.serve import serve as _serve
    from ._sources import GoPlugin
    from ._transports.goplugin import GoPluginOptions
    from ._transports.goplugin import GoPluginOptions as _Options

__all__ = ["GoPluginOptions", "HandshakeConfig", "serve"]

# name -> the module that defines it (`serve` comes with the plugin side, plugwire._goplugin.serve).
_LAZY: dict[str, str] = {
    "GoPluginOptions": "plugwire._transports.goplugin",  # host side: loaded only when asked for
    "HandshakeConfig": "plugwire._goplugin.handshake",
    "serve": "plugwire._goplugin.serve",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plugwire.goplugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


class _CallableModule(types.ModuleType):
    """The class of this module: a module that is also the go-plugin plugin source."""

    if TYPE_CHECKING:  # the lazy names, for type checkers reading `plugwire.goplugin` as this class
        HandshakeConfig: type[_Handshake]
        GoPluginOptions: type[_Options]
        serve = staticmethod(_serve)

    def __call__(
        self,
        executable: str,
        *args: str,
        handshake: _Handshake,
        service: str = "plugwire.v1.Plugin",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        options: _Options | None = None,
    ) -> GoPlugin:
        """A go-plugin plugin (gRPC protocol) run and supervised by the host.

        Args:
            executable: The plugin program (a path, or a name looked up on PATH).
            args: Its arguments.
            handshake: The magic cookie and app protocol version it expects.
            service: The gRPC service it serves: `"plugwire.v1.Plugin"` (the default:
                `manager.execute` calls it) or its own service's full name (e.g.
                `"proto.KV"`: reach it with `manager.channel(name)` and your stubs).
            env: Extra environment variables; of the host's environment only PATH, HOME,
                LANG, LC_*, TZ and TMPDIR are passed on.
            cwd: Its working directory.
            options: Transport settings beyond the config (grace, restart policy, hooks).

        Returns:
            A plugin source for `manager.register(name, source)`.

        Raises:
            MissingDependencyError: When the plugin is registered, if the grpc extra is not
                installed (1011, naming `pip install 'plugwire[grpc]'`).
        """
        from ._sources import goplugin  # host code, loaded only when a host asks for it

        return goplugin(executable, *args, handshake=handshake, service=service, env=env, cwd=cwd, options=options)


sys.modules[__name__].__class__ = _CallableModule
