"""Start one go-plugin plugin process: its environment, its handshake line, its socket, its
health; and the connection the process pool supervises (a grpc.aio channel to the socket).

The process runs like every plugwire plugin process (`PluginProcess`: own process group,
parent-death signal, pidfd exit watch, reaped), with go-plugin's environment instead of
plugwire's protocol variables: the magic cookie, `PLUGIN_PROTOCOL_VERSIONS`,
`PLUGIN_MIN_PORT`/`PLUGIN_MAX_PORT`, and `PLUGIN_UNIX_SOCKET_DIR` naming a private 0700
folder the host creates per process and removes once the process is reaped. go-plugin 1.0.1
ignores that variable and makes its socket in `os.TempDir()`, so `TMPDIR` names the same
folder: the socket of an old plugin lands there too, and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .._config import PluginConfig
from .._errors import ErrorCode, PluginError, ProcessError, ProtocolError
from .._goplugin import (
    MAX_PORT_ENV,
    MIN_PORT_ENV,
    PROTOCOL_VERSIONS_ENV,
    UNIX_SOCKET_DIR_ENV,
    HandshakeConfig,
    HandshakeLine,
    parse_handshake_line,
)
from .._goplugin.handshake import HEALTH_SERVICE
from .._models import HealthStatus, PluginInfo, Status
from .._proto import GrpcModules
from ._hclog import HclogForwarder
from ._process import PluginProcess, describe_status, scrubbed_env
from ._stalls import StallWatch
from .grpc import GrpcTransport, channel_options

__all__ = ["PLUGWIRE_SERVICE", "GoConnection", "GoLaunch", "launch_go_plugin"]

PLUGWIRE_SERVICE: Final = "plugwire.v1.Plugin"
_LINE_LIMIT: Final = 64 * 1024  # a handshake line with a certificate is ~1 KiB
_SHUTDOWN: Final = "/plugin.GRPCController/Shutdown"
_log = logging.getLogger("plugwire.transport.goplugin")


@dataclass(frozen=True, slots=True)
class GoLaunch:
    """What starting one go-plugin process needs besides its argv."""

    config: PluginConfig
    handshake: HandshakeConfig
    service: str
    app_versions: tuple[int, ...]
    min_port: int
    max_port: int
    stderr_line_limit: int
    stderr_tail: int


class _Stdout(asyncio.Protocol):
    """The plugin's stdout: its first line is the handshake; later lines are logged at DEBUG."""

    def __init__(self, name: str) -> None:
        self.line: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._logger = logging.getLogger(f"plugwire.plugin.{name}")
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's do not subclass the ABC

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            text = self._buffer[:end].decode("utf-8", "replace").rstrip("\r")
            del self._buffer[: end + 1]
            if not self.line.done():
                self.line.set_result(text)
            else:
                self._logger.debug("stdout: %s", text)
        if not self.line.done() and len(self._buffer) > _LINE_LIMIT:
            self.line.set_result(self._buffer[:200].decode("utf-8", "replace"))
            self._buffer.clear()
        elif self.line.done() and len(self._buffer) > _LINE_LIMIT:
            self._buffer.clear()

    def seen(self) -> str:
        """What the plugin printed without ending the line (for a start timeout's message)."""
        return self._buffer[:200].decode("utf-8", "replace")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class GoConnection:
    """A started go-plugin process's channel, as the process pool sees a connection.

    `lost` resolves when the pool closes it (its process exited or was retired); one
    process serves every call (gRPC multiplexes), so `inflight` and the stall watch stay
    idle: the pool never weighs processes against each other here.
    """

    def __init__(
        self,
        name: str,
        mods: GrpcModules,
        channel: Any,
        line: HandshakeLine,
        *,
        rpc: GrpcTransport | None,
        health_timeout: float,
        on_close: Callable[[Any], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        self.name = name
        self.mods = mods
        self.channel = channel
        self.line = line
        #: The plugwire.v1 call path over `channel` (None: the plugin serves its own services).
        self.rpc = rpc
        self.lost: asyncio.Future[PluginError] = loop.create_future()
        self.alive = True
        self.inflight = 0
        self.calls_started = 0
        self.stalls = StallWatch(loop, lambda: 0, lambda _: None, name, 0.0)
        self._health_timeout = health_timeout
        self._on_close = on_close
        self._health = mods.health_pb2_grpc.HealthStub(channel).Check
        #: Multicallables of this channel made for a `PluginChannel`'s methods (keyed by them).
        self.callables: dict[object, Any] = {}

    def close(self, reason: PluginError) -> None:
        if not self.alive:
            return
        self.alive = False
        if not self.lost.done():
            self.lost.set_result(reason)
        self._on_close(self.channel)

    async def health(self) -> HealthStatus:
        """go-plugin's health service `"plugin"`, then, for a plugwire.v1 plugin, its own health."""
        await check_serving(self.mods, self._health, self.name, self._health_timeout)
        if self.rpc is not None:
            return await self.rpc.health()
        return HealthStatus(status=Status.HEALTHY, message="serving")

    async def shutdown(self, timeout: float) -> None:
        """Ask the plugin to stop (`GRPCController.Shutdown`). go-plugin's plugin stops its
        server while answering, so the call often ends UNAVAILABLE: that is no failure."""
        call = self.channel.unary_unary(_SHUTDOWN, request_serializer=_empty, response_deserializer=_raw)
        try:
            await call(b"", timeout=timeout)
        except Exception as exc:
            _log.debug("plugin %r: GRPCController.Shutdown ended with %s", self.name, exc)


def _empty(_: object) -> bytes:
    return b""


def _raw(data: bytes) -> bytes:
    return data


async def check_serving(mods: GrpcModules, check: Any, name: str, timeout: float) -> None:
    """Raise 2037 unless the health service `"plugin"` answers SERVING within `timeout`."""
    request = mods.health_pb2.HealthCheckRequest(service=HEALTH_SERVICE)
    try:
        reply = await check(request, timeout=timeout or None)
    except mods.aio.AioRpcError as exc:
        raise ProtocolError(
            f"plugin {name!r}: its health service {HEALTH_SERVICE!r} failed: {exc.code().name}: {exc.details()}",
            code=ErrorCode.GO_HEALTH_NOT_SERVING,
            plugin=name,
        ) from None
    if reply.status != mods.health_pb2.HealthCheckResponse.SERVING:
        status = mods.health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        raise ProtocolError(
            f"plugin {name!r}: its health service {HEALTH_SERVICE!r} reports {status}, not SERVING",
            code=ErrorCode.GO_HEALTH_NOT_SERVING,
            plugin=name,
        )


def go_plugin_env(launch: GoLaunch, socket_dir: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a go-plugin process: the allowlisted host variables, the plugin's
    `env`, and go-plugin's variables (the cookie, versions, ports, socket folder)."""
    env = scrubbed_env({**extra, **launch.config.env}, launch.config.name, protocol=False)
    env.update(
        {
            launch.handshake.magic_cookie_key: launch.handshake.magic_cookie_value,
            PROTOCOL_VERSIONS_ENV: ",".join(str(v) for v in launch.app_versions),
            MIN_PORT_ENV: str(launch.min_port),
            MAX_PORT_ENV: str(launch.max_port),
            UNIX_SOCKET_DIR_ENV: socket_dir,
            "TMPDIR": socket_dir,  # go-plugin 1.0.1 makes its socket in os.TempDir()
        }
    )
    return env


async def launch_go_plugin(
    argv: Sequence[str], launch: GoLaunch, mods: GrpcModules, *, on_close: Callable[[Any], None]
) -> tuple[PluginProcess, GoConnection, PluginInfo]:
    """Start the plugin, read its handshake line, connect and check its health.

    Raises:
        ProcessError: It could not be started (1901), exited before its line (1902, with
            its stderr), or printed no line within `connection_timeout` (1903).
        ProtocolError: Its line is malformed (2020-2026, quoted), names a socket that does
            not exist or does not answer (2034), carries a TLS certificate (2035); its health
            service is not SERVING (2037).
    """
    config = launch.config
    name = config.name
    socket_dir = tempfile.mkdtemp(prefix="plugwire-goplugin-")  # mode 0700
    try:
        process = await PluginProcess.spawn(
            argv,
            name=name,
            env=go_plugin_env(launch, socket_dir, {}),
            cwd=config.work_dir or None,
            channel=None,
            stderr_line_limit=launch.stderr_line_limit,
            stderr_tail=launch.stderr_tail,
            stderr_forwarder=HclogForwarder,
        )
    except BaseException:
        shutil.rmtree(socket_dir, ignore_errors=True)
        raise
    stdout = _Stdout(name)
    pipe = process.popen.stdout
    assert pipe is not None

    def reaped(_: object) -> None:
        stdout.close()
        shutil.rmtree(socket_dir, ignore_errors=True)

    process.exited.add_done_callback(reaped)
    channel: Any = None
    try:
        await asyncio.get_running_loop().connect_read_pipe(lambda: stdout, pipe)
        line = await _read_line(process, stdout, launch)
        address = line.address
        if line.network == "unix" and not os.path.exists(address):  # noqa: ASYNC240 - one stat, no I/O wait
            raise _unreachable(name, line, "the socket it names does not exist")
        target = f"unix:{address}" if line.network == "unix" else address
        channel = mods.aio.insecure_channel(target, options=channel_options(config.connection))
        check = mods.health_pb2_grpc.HealthStub(channel).Check
        try:
            await check_serving(mods, check, name, config.connection.connection_timeout)
        except ProtocolError as exc:
            if "UNAVAILABLE" in exc.message or "DEADLINE_EXCEEDED" in exc.message:
                raise _unreachable(name, line, exc.message) from None
            raise
        rpc = None
        if launch.service == PLUGWIRE_SERVICE:
            rpc = GrpcTransport.over(name, channel, connection=config.connection, health_check=config.health_check)
            info = await rpc.info()
        else:
            info = PluginInfo(name=name, version="0.0.0", description=f"go-plugin plugin serving {launch.service}")
        info = PluginInfo(
            name=info.name,
            version=info.version,
            description=info.description,
            author=info.author,
            capabilities=info.capabilities,
            metadata={
                **info.metadata,
                "go_plugin.app_protocol_version": str(line.app_protocol_version),
                "go_plugin.address": f"{line.network}:{address}",
                "go_plugin.service": launch.service,
            },
        )
    except BaseException:
        if channel is not None:
            await channel.close()
        process.kill()
        await asyncio.shield(process.exited)
        raise
    conn = GoConnection(
        name, mods, channel, line, rpc=rpc, health_timeout=config.health_check.timeout, on_close=on_close
    )
    return process, conn, info


async def _read_line(process: PluginProcess, stdout: _Stdout, launch: GoLaunch) -> HandshakeLine:
    name = launch.config.name
    limit = launch.config.connection.connection_timeout or None
    try:
        async with asyncio.timeout(limit):
            await asyncio.wait((stdout.line, process.exited), return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        seen = stdout.seen()
        tail = process.stderr_tail()
        raise ProcessError(
            f"go-plugin plugin {name!r} printed no handshake line within {limit:g}s"
            + (f" (stdout so far: {seen!r})" if seen else "")
            + (f"; stderr: {tail}" if tail else ""),
            code=ErrorCode.PROCESS_START_TIMEOUT,
            plugin=name,
            details={"stderr": tail},
        ) from None
    if not stdout.line.done():  # it exited first
        launch_error = process.launch_error()
        if launch_error is not None:
            raise launch_error
        tail = process.stderr_tail()
        raise ProcessError(
            f"go-plugin plugin {name!r} exited before its handshake line ({describe_status(process.exited.result())})"
            + (f"; stderr: {tail}" if tail else ""),
            code=ErrorCode.PROCESS_EXITED_DURING_START,
            plugin=name,
            details={"stderr": tail, "returncode": process.exited.result()},
        )
    try:
        line = parse_handshake_line(stdout.line.result(), app_versions=launch.app_versions)
    except ProtocolError as exc:
        exc.plugin = name
        raise
    if line.server_cert:
        raise ProtocolError(
            f"go-plugin plugin {name!r} answered with a TLS certificate (AutoMTLS or its own TLS): the plugwire"
            " host speaks plaintext gRPC over the plugin's private socket only (see docs/go-plugin.md, AutoMTLS)",
            code=ErrorCode.GO_AUTOMTLS_UNSUPPORTED,
            plugin=name,
        )
    return line


def _unreachable(name: str, line: HandshakeLine, why: str) -> ProtocolError:
    return ProtocolError(
        f"go-plugin plugin {name!r}: its handshake line names {line.network} address {line.address!r}, "
        f"which cannot be reached: {why}",
        code=ErrorCode.GO_SOCKET_UNREACHABLE,
        plugin=name,
        details={"address": line.address},
    )
