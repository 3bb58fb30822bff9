"""HashiCorp go-plugin plugins in a plugwire host (issue 20): a call to a real Go plugin over its
socket, through plugwire, against bare `grpc.aio` on the same kind of socket; and the plugin's
start-to-ready time.

The Go plugins are the test fixtures (tests/support/go/: go-plugin's KV example, and a Go
plugin serving plugwire.v1.Plugin), built offline from Debian's go-plugin 1.0.1 sources; the
cases are skipped, saying what to install, where Go is not. Both sides of each case start the
same binary with go-plugin's environment; the bare side reads its handshake line itself and
calls with the same generated stubs (or the raw plugwire.v1 message) and no plugwire at all.
go-plugin's KV plugin logs one hclog line per `Get` (at debug): the plugwire host reads and
parses it (no record is made below DEBUG), the bare side sends the plugin's stderr to
/dev/null, so `goplugin.channel` includes that log line's cost. The plugwire.v1 plugin runs
with `PWPLUGIN_LOG_LEVEL=info` (no line per call): `goplugin.execute` measures the call alone.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import msgspec

import plugwire

from .._model import Env, Op, Side, SkipCase, at_most, case
from ._plugin import REQUEST, Echo

KV_COOKIE = ("BASIC_PLUGIN", "hello")
PW_COOKIE = ("PWPLUGIN", "plugwire")


def _golang() -> Any:
    """The test support that builds the Go fixtures (tests/support/golang.py), loaded by name:
    it is test code, not part of what the benchmarks type-check."""
    return importlib.import_module("tests.support.golang")


def _program(name: str) -> Path:
    """The Go fixture `name`, built (and cached) by the test support; SkipCase without Go."""
    reason = _golang().go_missing_reason()
    if reason is not None:
        raise SkipCase(reason)
    program: Path = _golang().build_go_program(name)
    return program


def _kv() -> tuple[Any, Any]:
    stubs: tuple[Any, Any] = _golang().kv_stubs()
    return stubs


@contextmanager
def _started_by_hand(
    env: Env, program: Path, cookie: tuple[str, str], extra: dict[str, str] | None = None
) -> Iterator[str]:
    """Start a go-plugin plugin as a bare host would; yield its socket's address."""
    child_env = {**env.child_env, cookie[0]: cookie[1], "PLUGIN_PROTOCOL_VERSIONS": "1", "TMPDIR": str(env.workdir)}
    child_env.update(extra or {})
    proc = subprocess.Popen(
        [str(program)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        fields = line.split("|")
        if len(fields) < 5 or fields[2] != "unix":
            raise RuntimeError(f"{program.name} printed {line!r}, not a unix handshake line (status {proc.poll()})")
        yield fields[3]
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _source(program: Path, cookie: tuple[str, str], service: str, env: dict[str, str] | None = None) -> Any:
    handshake = plugwire.goplugin.HandshakeConfig(1, *cookie)
    return plugwire.goplugin(str(program), handshake=handshake, service=service, env=env)


QUIET = {"PWPLUGIN_LOG_LEVEL": "info"}


# ---------------------------------------------------------------- channel: proto.KV Get
@asynccontextmanager
async def _bare_kv(env: Env) -> AsyncIterator[Op]:
    import grpc  # type: ignore[import-untyped,unused-ignore]

    kv_pb2, kv_pb2_grpc = _kv()
    with _started_by_hand(env, _program("kvplugin"), KV_COOKIE) as address:
        channel: Any = grpc.aio.insecure_channel(f"unix:{address}")
        try:
            stub = kv_pb2_grpc.KVStub(channel)
            request = kv_pb2.GetRequest(key="k")

            async def get() -> None:
                await stub.Get(request)

            await get()
            yield get
        finally:
            await channel.close()


@case(
    "goplugin.channel",
    label="KV Get on a Go go-plugin plugin through manager.channel",
    baseline=Side("bare grpc.aio on the plugin's socket", _bare_kv, requires=("grpc",)),
    target=at_most(1.25),
    requires=("grpc",),
    note="issue 20: go-plugin's KV example plugin (Go) called with its own stubs over the managed "
    "channel (supervised, verified process) against a bare grpc.aio channel to the same binary.",
)
@asynccontextmanager
async def goplugin_channel(env: Env) -> AsyncIterator[Op]:
    kv_pb2, kv_pb2_grpc = _kv()
    program = _program("kvplugin")
    manager: plugwire.AsyncPluginManager[Any, Any] = plugwire.AsyncPluginManager(dict, dict)
    async with manager:
        await manager.register(_source(program, KV_COOKIE, "proto.KV"), name="kv")
        stub = kv_pb2_grpc.KVStub(manager.channel("kv"))
        request = kv_pb2.GetRequest(key="k")

        async def get() -> None:
            await stub.Get(request)

        await get()
        yield get


# -------------------------------------------------------- execute: plugwire.v1.Plugin
@asynccontextmanager
async def _bare_execute(env: Env) -> AsyncIterator[Op]:
    import grpc  # type: ignore[import-untyped,unused-ignore]

    from plugwire._proto import load

    mods = load()
    payload = msgspec.msgpack.encode(REQUEST)  # what the manager's msgpack codec sends
    with _started_by_hand(env, _program("pwplugin"), PW_COOKIE, QUIET) as address:
        channel: Any = grpc.aio.insecure_channel(f"unix:{address}")
        try:
            stub = mods.pb2_grpc.PluginStub(channel)
            request = mods.pb2.ExecuteRequest(method="execute", payload=payload, content_type="application/msgpack")

            async def execute() -> None:
                await stub.Execute(request)

            await execute()
            yield execute
        finally:
            await channel.close()


@case(
    "goplugin.execute",
    label="manager.execute, Go go-plugin plugin serving plugwire.v1",
    baseline=Side("bare grpc.aio Execute on the plugin's socket", _bare_execute, requires=("grpc",)),
    target=at_most(1.25),
    requires=("grpc",),
    note="issue 20: a typed request through the full execute path (policies, codec) to a Go "
    "go-plugin plugin implementing plugwire.v1.Plugin, against a bare grpc.aio Execute with "
    "the encoded bytes on a socket of the same binary.",
)
@asynccontextmanager
async def goplugin_execute(env: Env) -> AsyncIterator[Op]:
    program = _program("pwplugin")
    manager: plugwire.AsyncPluginManager[Echo, Echo] = plugwire.AsyncPluginManager(Echo, Echo)
    async with manager:
        await manager.register(_source(program, PW_COOKIE, "plugwire.v1.Plugin", QUIET), name="go")
        if await manager.execute("go", REQUEST) != REQUEST:
            raise RuntimeError("the Go echo plugin answered with a different message")

        async def execute() -> None:
            await manager.execute("go", REQUEST)

        yield execute


# ------------------------------------------------------------------ start-to-ready
@asynccontextmanager
async def _bare_start(env: Env) -> AsyncIterator[Op]:
    import grpc  # type: ignore[import-untyped,unused-ignore]

    program = _program("kvplugin")

    async def start_stop() -> None:
        with _started_by_hand(env, program, KV_COOKIE) as address:
            channel: Any = grpc.aio.insecure_channel(f"unix:{address}")
            await asyncio.wait_for(channel.channel_ready(), 10)
            await channel.close()

    yield start_stop


@case(
    "goplugin.start",
    label="register + unregister a Go go-plugin plugin (start to ready, graceful stop)",
    baseline=Side("spawn, read the line, connect, SIGKILL (by hand)", _bare_start, requires=("grpc",)),
    target=None,
    requires=("grpc",),
    rounds=5,
    note="info (issue 20: start-to-ready time): plugwire's start (spawn, handshake line, health "
    '"plugin", channel) and graceful stop (GRPCController.Shutdown), against starting the same '
    "binary by hand and killing it.",
)
@asynccontextmanager
async def goplugin_start(env: Env) -> AsyncIterator[Op]:
    program = _program("kvplugin")
    manager: plugwire.AsyncPluginManager[Any, Any] = plugwire.AsyncPluginManager(dict, dict)
    source = _source(program, KV_COOKIE, "proto.KV")
    async with manager:

        async def start_stop() -> None:
            await manager.register(source, name="kv")
            await manager.unregister("kv")

        yield start_stop
