"""Plugin sources: what `plugwire.in_process(...)` (and the other transport helpers) return.

A source turns a name and a base `PluginConfig` into the plugin's full config, and that
config into a started-on-demand transport. Config files describe plugins without a source;
`source_for_config` picks the right one by transport.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from ._auth import CredentialProvider, credential_provider
from ._config import AuthConfig, GoPluginConfig, PluginConfig
from ._errors import ConfigError, ErrorCode
from ._goplugin import HandshakeConfig
from ._models import AuthMethod, Transport
from ._protocol import DEFAULT_MAX_FRAME
from ._tls import TLSConfig, tls_from_auth
from ._transports.base import BaseTransport
from ._transports.inprocess import InProcessTransport
from ._transports.subprocess import SubprocessOptions, SubprocessTransport

if TYPE_CHECKING:
    from ._transports.goplugin import GoPluginOptions

__all__ = [
    "GoPlugin",
    "Grpc",
    "InProcess",
    "PluginSource",
    "Subprocess",
    "goplugin",
    "grpc",
    "in_process",
    "source_for_config",
    "subprocess",
]


@runtime_checkable
class PluginSource(Protocol):
    """Where a plugin lives; made by `plugwire.in_process()` and its siblings."""

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        """Return `base` renamed to `name`, with this source's transport settings."""
        ...

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        """Build (not start) the transport for `config`."""
        ...


@dataclass(frozen=True, slots=True)
class InProcess:
    """A plugin object that runs inside the host process."""

    plugin: Any
    codec: bool = True

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        return msgspec.structs.replace(base, name=name, transport=Transport.IN_PROCESS)

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        return InProcessTransport(self.plugin, request_type=request_type, codec=self.codec)


def in_process(plugin: Any, *, codec: bool = True) -> InProcess:
    """Run `plugin` inside the host process.

    Args:
        plugin: An object implementing `plugwire.Plugin` (`def` methods are run in threads).
        codec: Encode and validate requests and responses as a remote plugin would
            (the default); False passes objects through untouched, for speed.
    """
    return InProcess(plugin, codec=codec)


@dataclass(frozen=True, slots=True)
class Subprocess:
    """A plugin executable run as supervised child processes (protocol v1 over stdio)."""

    executable: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    options: SubprocessOptions | None = None

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        return msgspec.structs.replace(
            base,
            name=name,
            transport=Transport.EXECUTABLE,
            executable=self.executable,
            args=self.args,
            env={**base.env, **self.env},
            work_dir=self.cwd or base.work_dir,
        )

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        options = self.options or SubprocessOptions()
        if options.credentials is None and config.auth.method is not AuthMethod.NONE:
            # The plugin's `auth` config becomes the handshake's credentials (hello.auth).
            options = dataclasses.replace(options, credentials=credential_provider(config.auth))
        if self.options is None or self.options.max_frame == DEFAULT_MAX_FRAME:
            # `connection.max_message_size` bounds the frames of executable plugins too,
            # unless SubprocessOptions(max_frame=...) says otherwise.
            options = dataclasses.replace(options, max_frame=config.connection.max_message_size)
        return SubprocessTransport(config, options, request_type=request_type)


def subprocess(
    executable: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    options: SubprocessOptions | None = None,
) -> Subprocess:
    """Run a plugin executable as a child process (the README's `Subprocess("./x")`).

    The process lives as long as its registration; `connection.max_connections` is the
    most processes of the plugin (one to start with, more while all are busy).

    Args:
        executable: The program (a path, or a name looked up on PATH).
        args: Its arguments.
        env: Extra environment variables; the host's own environment is not passed on
            except PATH, HOME, LANG, LC_*, TZ and TMPDIR.
        cwd: Its working directory.
        options: Transport settings beyond the config (grace, restart policy, hooks).
    """
    return Subprocess(executable, tuple(args), dict(env or {}), cwd or "", options)


@dataclass(frozen=True, slots=True)
class Grpc:
    """A plugin served over gRPC (`plugwire.grpc(...)`, or a `grpc`/`grpc-tls` config entry).

    `tls=None` with a `grpc-tls` config takes the TLS files from the config's `auth`;
    `auth=None` takes the credentials from the config's `auth`.
    """

    target: str
    tls: TLSConfig | None = None
    auth: AuthConfig | CredentialProvider | None = None

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        transport = Transport.GRPC_TLS if self.tls is not None else base.transport
        if transport not in (Transport.GRPC, Transport.GRPC_TLS):
            transport = Transport.GRPC
        auth = self.auth if isinstance(self.auth, AuthConfig) else base.auth
        return msgspec.structs.replace(base, name=name, transport=transport, endpoint=self.target, auth=auth)

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        from ._transports.grpc import GrpcTransport  # lazily: grpc is an optional extra

        tls = self.tls
        if tls is None and (config.transport is Transport.GRPC_TLS or config.auth.method is AuthMethod.MTLS):
            tls = tls_from_auth(config.auth)
        provider = credential_provider(self.auth if self.auth is not None else config.auth)
        return GrpcTransport(
            config.name,
            self.target or config.endpoint,
            connection=config.connection,
            health_check=config.health_check,
            tls=tls,
            credentials=provider,
        )


def grpc(
    target: str, *, tls: TLSConfig | bool | None = None, auth: AuthConfig | CredentialProvider | None = None
) -> Grpc:
    """A plugin served over gRPC at `target`.

    Args:
        target: `host:port`, `unix:/path`, `dns:///name:port` (round-robin over every address
            the name resolves to), or any other grpc target.
        tls: A `TLSConfig` (CA, client certificate for mTLS, expected server name), or True
            for TLS with the system's CAs; None or False for plaintext.
        auth: An `AuthConfig` (api-key, bearer, basic; secrets inline, from files or from
            environment variables) or a `CredentialProvider` for custom schemes.

    Raises:
        MissingDependencyError: When the plugin is registered, if the grpc extra is not
            installed (1011, naming `pip install 'plugwire[grpc]'`).
    """
    chosen = TLSConfig() if tls is True else (tls or None)
    return Grpc(target, tls=chosen, auth=auth)


@dataclass(frozen=True, slots=True)
class GoPlugin:
    """A HashiCorp go-plugin plugin (gRPC protocol) run as one supervised process
    (`plugwire.goplugin(...)`, or a `transport: go-plugin` config entry, whose `go_plugin`
    section holds the handshake; `handshake=None` takes it from there)."""

    executable: str
    args: tuple[str, ...] = ()
    handshake: HandshakeConfig | None = None
    service: str = "plugwire.v1.Plugin"
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    options: GoPluginOptions | None = None

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        go_plugin = base.go_plugin
        if self.handshake is not None:
            go_plugin = GoPluginConfig(
                protocol_version=self.handshake.protocol_version,
                magic_cookie_key=self.handshake.magic_cookie_key,
                magic_cookie_value=self.handshake.magic_cookie_value,
                service=self.service,
            )
        return msgspec.structs.replace(
            base,
            name=name,
            transport=Transport.GO_PLUGIN,
            executable=self.executable,
            args=self.args,
            env={**base.env, **self.env},
            work_dir=self.cwd or base.work_dir,
            go_plugin=go_plugin,
        )

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        from ._transports.goplugin import GoPluginTransport  # lazily: grpc is an optional extra

        section = config.go_plugin
        handshake = HandshakeConfig(section.protocol_version, section.magic_cookie_key, section.magic_cookie_value)
        return GoPluginTransport(config, handshake, service=section.service, options=self.options)


def goplugin(
    executable: str,
    *args: str,
    handshake: HandshakeConfig,
    service: str = "plugwire.v1.Plugin",
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    options: GoPluginOptions | None = None,
) -> GoPlugin:
    """A go-plugin plugin; see `plugwire.goplugin` (this function is what it calls).

    Raises:
        ConfigError: `handshake` is not a `HandshakeConfig`, or `service` is empty (1003).
    """
    if not isinstance(handshake, HandshakeConfig):
        raise ConfigError(
            f"handshake must be a plugwire.goplugin.HandshakeConfig, not {type(handshake).__name__}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    if not service or not isinstance(service, str):
        raise ConfigError(
            f"service must be a gRPC service's full name (e.g. 'proto.KV'), not {service!r}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    return GoPlugin(executable, tuple(args), handshake, service, dict(env or {}), cwd or "", options)


def source_for_config(config: PluginConfig) -> PluginSource:
    """The source that builds a transport for a plugin described only by config.

    Raises:
        ConfigError: The transport needs an object (in-process) or is not available here.
    """
    if config.transport is Transport.EXECUTABLE:
        return Subprocess(config.executable, config.args, config.env, config.work_dir)
    if config.transport is Transport.IN_PROCESS:
        raise ConfigError(
            f"plugin {config.name!r}: an in-process plugin is an object; register it with "
            "manager.register(obj) instead of describing it in config",
            code=ErrorCode.CONFIG_UNKNOWN_TRANSPORT,
        )
    if config.transport in (Transport.GRPC, Transport.GRPC_TLS):
        return Grpc(config.endpoint)
    if config.transport is Transport.GO_PLUGIN:
        return GoPlugin(config.executable, config.args, None, config.go_plugin.service, config.env, config.work_dir)
    raise ConfigError(
        f"plugin {config.name!r}: the {config.transport.value!r} transport is not available in this build",
        code=ErrorCode.CONFIG_UNKNOWN_TRANSPORT,
    )
