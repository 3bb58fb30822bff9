"""A plugwire host runs go-plugin's KV example plugin (a real Go plugin built from Debian's
go-plugin 1.0.1): its own service through `manager.channel(name)`, its hclog stderr as log
records, crash restarts, graceful and forced stops, and nothing left behind."""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import grpc
import pytest

import plugwire
from plugwire.errors import ErrorCode, PluginError
from plugwire.goplugin import GoPluginOptions, HandshakeConfig
from tests.support.golang import kv_stubs

KV = HandshakeConfig(protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello")


def kv_source(program: Path, **env: str) -> Any:
    return plugwire.goplugin(str(program), handshake=KV, service="proto.KV", env=env)


def socket_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "plugwire-goplugin-*")))


def exists(path: str) -> bool:
    return os.path.exists(path)  # (one stat: no need to leave the event loop)


def transport_of(manager: plugwire.AsyncPluginManager[Any, Any], name: str) -> Any:
    return manager._registry.lookup(name).transport


async def test_put_and_get_through_the_managed_channel(kvplugin_program: Path) -> None:
    kv_pb2, kv_pb2_grpc = kv_stubs()
    before = socket_dirs()
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(kv_source(kvplugin_program), name="kv")
        stub = kv_pb2_grpc.KVStub(manager.channel("kv"))
        await stub.Put(kv_pb2.PutRequest(key="greeting", value=b"hello"))
        reply = await stub.Get(kv_pb2.GetRequest(key="greeting"))
        assert reply.value == b"hello"
        info = manager.get_plugin("kv").info()
        assert info.metadata["go_plugin.service"] == "proto.KV"
        assert info.metadata["go_plugin.app_protocol_version"] == "1"
        address = info.metadata["go_plugin.address"].removeprefix("unix:")
        # The socket lives in a private folder the host made (mode 0700).
        folder = os.path.dirname(address)
        assert os.path.basename(folder).startswith("plugwire-goplugin-")
        assert os.stat(folder).st_mode & 0o777 == 0o700
        assert (await manager.health())["kv"].status is plugwire.Status.HEALTHY
        assert manager.channel("kv") is manager.channel("kv")
    assert not exists(folder)
    assert socket_dirs() <= before


async def test_execute_on_a_plugin_with_its_own_service_says_to_use_the_channel(kvplugin_program: Path) -> None:
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(kv_source(kvplugin_program), name="kv")
        with pytest.raises(PluginError) as caught:
            await manager.execute("kv", {"k": 1})
        assert caught.value.code == ErrorCode.GO_NOT_PLUGWIRE_SERVICE
        assert "manager.channel" in str(caught.value)


async def test_hclog_levels_become_python_log_levels(kvplugin_program: Path, caplog: pytest.LogCaptureFixture) -> None:
    kv_pb2, kv_pb2_grpc = kv_stubs()
    with caplog.at_level(1, logger="plugwire.plugin.kv"):
        async with plugwire.AsyncPluginManager(dict, dict) as manager:
            await manager.register(kv_source(kvplugin_program), name="kv")
            await kv_pb2_grpc.KVStub(manager.channel("kv")).Put(kv_pb2.PutRequest(key="a", value=b"1"))
    levels = {r.getMessage(): r.levelno for r in caplog.records if r.name == "plugwire.plugin.kv"}
    assert levels["kvplugin level trace"] == 5
    assert levels["kvplugin level debug"] == logging.DEBUG
    assert levels["kvplugin level info"] == logging.INFO
    assert levels["kvplugin level warn"] == logging.WARNING
    assert levels["kvplugin level error"] == logging.ERROR
    assert levels["kvplugin plain stderr line"] == logging.INFO  # not JSON: as it is
    assert levels["put: key=a"] == logging.INFO  # the call's key/value pairs follow the message
    (put,) = [r for r in caplog.records if r.getMessage() == "put: key=a"]
    assert put.hclog_fields == {"key": "a"}  # type: ignore[attr-defined]
    assert put.plugin_logger == "kvplugin"  # type: ignore[attr-defined]


async def test_a_crashed_plugin_is_restarted_and_the_channel_follows_it(kvplugin_program: Path) -> None:
    kv_pb2, kv_pb2_grpc = kv_stubs()
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(kv_source(kvplugin_program, KVPLUGIN_FAULT="exit-on-put"), name="kv")
        transport = transport_of(manager, "kv")
        first = transport.pool.workers[0].process
        stub = kv_pb2_grpc.KVStub(manager.channel("kv"))
        with pytest.raises(grpc.aio.AioRpcError) as died:  # the process exits inside the call: gRPC's own error
            await stub.Put(kv_pb2.PutRequest(key="a", value=b"1"), timeout=10)
        assert died.value.code() is grpc.StatusCode.UNAVAILABLE
        assert await first.exited == 7
        await transport.pool.wait_for(lambda: bool(transport.pool.workers) and transport.pool.workers[0].conn.alive)
        assert transport.crash_restarts() == 1
        # The same stub, through the same channel object, reaches the new process.
        assert (await stub.Get(kv_pb2.GetRequest(key="a"), timeout=10)).value == b""
        assert transport.pool.workers[0].process.pid != first.pid


async def test_a_call_made_while_the_plugin_restarts_waits_for_the_new_process(kvplugin_program: Path) -> None:
    kv_pb2, kv_pb2_grpc = kv_stubs()
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(kv_source(kvplugin_program, KVPLUGIN_FAULT="exit-on-put"), name="kv")
        transport = transport_of(manager, "kv")
        stub = kv_pb2_grpc.KVStub(manager.channel("kv"))
        first = transport.pool.workers[0].process
        with pytest.raises(grpc.aio.AioRpcError) as died:  # gRPC's own error, never a CancelledError
            await stub.Put(kv_pb2.PutRequest(key="a", value=b"1"), timeout=10)
        assert died.value.code() is grpc.StatusCode.UNAVAILABLE
        await first.exited
        # The pool dropped the process at its exit; the restart comes after a backoff (0.1 s).
        assert transport.current() is None
        reply = await stub.Get(kv_pb2.GetRequest(key="b"), timeout=10)
        assert reply.value == b""
        assert transport.pool.workers[0].process.pid != first.pid


async def test_stop_is_graceful_through_grpc_controller_shutdown(
    kvplugin_program: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(kv_source(kvplugin_program), name="kv")
        process = transport_of(manager, "kv").pool.workers[0].process
    assert process.exited.result() == 0  # it exited by itself: no SIGTERM, no SIGKILL
    assert not [r for r in caplog.records if "did not exit" in r.getMessage()]


async def test_a_plugin_that_ignores_shutdown_is_killed_after_the_grace(
    kvplugin_program: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = plugwire.goplugin(
        str(kvplugin_program),
        handshake=KV,
        service="proto.KV",
        env={"KVPLUGIN_FAULT": "hang-on-shutdown"},
        options=GoPluginOptions(grace=0.3, kill_after=1.0),
    )
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(source, name="kv")
        process = transport_of(manager, "kv").pool.workers[0].process
    assert process.exited.result() < 0  # signalled after the grace
    (warning,) = [r for r in caplog.records if "did not exit" in r.getMessage()]
    assert "GRPCController.Shutdown" in warning.getMessage()
    assert warning.levelno == logging.WARNING


async def test_unregister_leaves_no_process_socket_or_folder(kvplugin_program: Path) -> None:
    before = socket_dirs()
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(kv_source(kvplugin_program), name="kv")
        process = transport_of(manager, "kv").pool.workers[0].process
        address = manager.get_plugin("kv").info().metadata["go_plugin.address"].removeprefix("unix:")
        assert exists(address)
        await manager.unregister("kv")
        assert not process.running
        assert not exists(address)
        assert socket_dirs() <= before
        with pytest.raises(PluginError) as caught:
            manager.channel("kv")
        assert caught.value.code == ErrorCode.PLUGIN_NOT_FOUND


async def test_a_killed_plugin_leaves_no_socket_folder(kvplugin_program: Path) -> None:
    before = socket_dirs()
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(kv_source(kvplugin_program), name="kv")
        transport = transport_of(manager, "kv")
        first = transport.pool.workers[0].process
        first.kill()  # SIGKILL: the plugin cannot remove its socket itself
        await first.exited
        await transport.pool.wait_for(lambda: bool(transport.pool.workers) and transport.pool.workers[0].conn.alive)
        await asyncio.sleep(0)
        assert len(socket_dirs() - before) == 1  # the new process's only
    assert socket_dirs() <= before


async def test_the_channel_follows_the_name_through_a_replacement(kvplugin_program: Path) -> None:
    kv_pb2, kv_pb2_grpc = kv_stubs()
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(kv_source(kvplugin_program), name="kv")
        stub = kv_pb2_grpc.KVStub(manager.channel("kv"))
        await stub.Put(kv_pb2.PutRequest(key="a", value=b"old"))
        old = transport_of(manager, "kv").pool.workers[0].process.pid
        await manager.replace("kv")
        new = transport_of(manager, "kv").pool.workers[0].process.pid
        assert new != old
        assert (await stub.Get(kv_pb2.GetRequest(key="a"), timeout=10)).value == b""  # the new process's store


async def test_a_config_file_registers_the_go_plugin(kvplugin_program: Path, tmp_path: Path) -> None:
    kv_pb2, kv_pb2_grpc = kv_stubs()
    path = tmp_path / "plugins.yaml"
    path.write_text(
        "plugins:\n"
        "  - name: kv\n"
        "    transport: go-plugin\n"
        f"    executable: {kvplugin_program}\n"
        "    go_plugin: {magic_cookie_key: BASIC_PLUGIN, magic_cookie_value: hello, service: proto.KV}\n"
    )
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.load_config(str(path))
        stub = kv_pb2_grpc.KVStub(manager.channel("kv"))
        await stub.Put(kv_pb2.PutRequest(key="from", value=b"config"))
        assert (await stub.Get(kv_pb2.GetRequest(key="from"))).value == b"config"
