"""Every way a go-plugin plugin's start can go wrong is a coded error that says what happened,
and leaves no process, socket or folder behind: the real Go plugin's faults (wrong cookie,
unsupported version, garbage before the line, exit before it, no line at all) and, for lines a
Go plugin never prints, a tiny Python plugin that prints them."""

from __future__ import annotations

import base64
import glob
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plugwire
from plugwire.errors import ErrorCode, PluginError
from plugwire.goplugin import HandshakeConfig

KV = HandshakeConfig(protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello")


@pytest.fixture(autouse=True)
def no_socket_folder_left() -> Iterator[None]:
    pattern = os.path.join(tempfile.gettempdir(), "plugwire-goplugin-*")
    before = set(glob.glob(pattern))
    yield
    assert set(glob.glob(pattern)) <= before


async def start_error(source: Any, *, connection_timeout: float = 10.0) -> PluginError:
    config = plugwire.PluginConfig(
        name="p", connection=plugwire.ConnectionConfig(connection_timeout=connection_timeout)
    )
    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        with pytest.raises(PluginError) as caught:
            await manager.register(source, name="p", config=config)
    return caught.value


def kv(program: Path, handshake: HandshakeConfig = KV, **env: str) -> Any:
    return plugwire.goplugin(str(program), handshake=handshake, service="proto.KV", env=env)


def printing(line: str) -> Any:
    """A plugin that prints `line` as its handshake line, then waits to be stopped."""
    code = f"import sys, time; print({line!r}, flush=True); time.sleep(60)"
    return plugwire.goplugin(sys.executable, "-c", code, handshake=KV, service="proto.KV")


async def test_a_wrong_cookie_reports_the_plugins_own_message(kvplugin_program: Path) -> None:
    error = await start_error(kv(kvplugin_program, HandshakeConfig(1, "BASIC_PLUGIN", "not-hello")))
    assert error.code == ErrorCode.PROCESS_EXITED_DURING_START
    assert "exit status 1" in str(error)
    assert "This binary is a plugin" in str(error)  # go-plugin's own words, from its stderr


async def test_a_version_the_host_did_not_offer_is_refused(kvplugin_program: Path) -> None:
    error = await start_error(kv(kvplugin_program, KVPLUGIN_APP_VERSION="2"))
    assert error.code == ErrorCode.GO_APP_VERSION_NOT_OFFERED
    assert "'1|2|unix|" in str(error)  # the line, quoted
    assert error.plugin == "p"


async def test_garbage_before_the_line_is_quoted(kvplugin_program: Path) -> None:
    error = await start_error(kv(kvplugin_program, KVPLUGIN_FAULT="garbage-before-handshake"))
    assert error.code == ErrorCode.GO_HANDSHAKE_MALFORMED
    assert "'garbage before the handshake'" in str(error)


async def test_a_plugin_that_exits_before_its_line(kvplugin_program: Path) -> None:
    error = await start_error(kv(kvplugin_program, KVPLUGIN_FAULT="exit-before-handshake"))
    assert error.code == ErrorCode.PROCESS_EXITED_DURING_START
    assert "exit status 3" in str(error)
    assert "kvplugin level error" in str(error)  # its last stderr lines


async def test_a_plugin_that_never_prints_its_line_times_out(kvplugin_program: Path) -> None:
    error = await start_error(kv(kvplugin_program, KVPLUGIN_FAULT="hang-before-handshake"), connection_timeout=0.5)
    assert error.code == ErrorCode.PROCESS_START_TIMEOUT
    assert "no handshake line within 0.5s" in str(error)


async def test_a_line_with_a_missing_field() -> None:
    error = await start_error(printing("1|1|unix"))
    assert error.code == ErrorCode.GO_HANDSHAKE_MALFORMED
    assert "'1|1|unix'" in str(error)


async def test_a_line_without_the_protocol_field_means_net_rpc_which_is_refused() -> None:
    error = await start_error(printing("1|1|unix|/tmp/x"))
    assert error.code == ErrorCode.GO_PROTOCOL_UNSUPPORTED
    assert "net/rpc" in str(error)


async def test_a_socket_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-socket"
    error = await start_error(printing(f"1|1|unix|{missing}|grpc|"))
    assert error.code == ErrorCode.GO_SOCKET_UNREACHABLE
    assert str(missing) in str(error)
    assert "does not exist" in str(error)


async def test_a_tcp_address_nobody_listens_on() -> None:
    error = await start_error(printing("1|1|tcp|127.0.0.1:1|grpc|"), connection_timeout=2.0)
    assert error.code == ErrorCode.GO_SOCKET_UNREACHABLE
    assert "'127.0.0.1:1'" in str(error)


async def test_a_line_with_a_certificate_is_refused_as_automtls_is_not_spoken(tmp_path: Path) -> None:
    der = base64.b64encode(b"\x30\x03\x02\x01\x01").decode().rstrip("=")
    error = await start_error(printing(f"1|1|unix|{tmp_path}/s|grpc|{der}"))
    assert error.code == ErrorCode.GO_AUTOMTLS_UNSUPPORTED
    assert "AutoMTLS" in str(error)
