"""`plugwire._goplugin.serve`'s arguments, its listeners, and go-plugin's own messages."""

from __future__ import annotations

import asyncio
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from plugwire._goplugin import HandshakeConfig
from plugwire._goplugin.serve import check_options, serve
from plugwire._goplugin.services import StdioService, messages
from plugwire.errors import ConfigError
from tests.support.golang import goplugin_stubs

EXAMPLE = HandshakeConfig(protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello")


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"handshake": ("BASIC_PLUGIN", "hello")}, "handshake must be a HandshakeConfig"),
        ({"network": "udp"}, "network must be 'unix' or 'tcp'"),
        ({"grace": -1}, "grace must be a number >= 0"),
        ({"grace": True}, "grace must be a number >= 0"),
        ({"max_workers": 0}, "max_workers must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_coded_errors_before_anything_starts(arguments: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        serve(lambda server: None, **{"handshake": EXAMPLE, **arguments})
    assert caught.value.code == 1003


def test_good_arguments_pass() -> None:
    options = check_options(EXAMPLE, "tcp", 0, "DEBUG", 4)
    assert (options.network, options.grace, options.max_workers) == ("tcp", 0.0, 4)


def test_the_private_messages_have_go_plugins_encoding() -> None:
    ours = messages()
    theirs, _ = goplugin_stubs()  # compiled by protoc from the .proto text, independently
    data = ours.StdioData(channel=1, data=b"hi\n").SerializeToString()
    assert theirs.StdioData.FromString(data) == theirs.StdioData(channel=theirs.StdioData.STDOUT, data=b"hi\n")
    info = theirs.ConnInfo(service_id=7, network="unix", address="/s", knock=theirs.ConnInfo.Knock(knock=True))
    parsed = ours.ConnInfo.FromString(info.SerializeToString())
    assert (parsed.service_id, parsed.network, parsed.address, parsed.knock.knock) == (7, "unix", "/s", True)
    assert ours.Empty().SerializeToString() == b""


async def test_stdout_goes_to_the_log_while_no_stream_is_open() -> None:
    stopping = asyncio.Event()
    fallback: list[bytes] = []
    service = StdioService(stopping, fallback.append)
    service.publish(b"nobody listens\n")
    assert fallback == [b"nobody listens\n"]


async def test_an_open_stream_gets_stdout_and_a_full_one_sends_the_rest_to_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plugwire._goplugin import services

    monkeypatch.setattr(services, "STDIO_QUEUE_CHUNKS", 2)
    stopping = asyncio.Event()
    fallback: list[bytes] = []
    service = StdioService(stopping, fallback.append)
    stream = service._stream(None, None)
    first = asyncio.ensure_future(anext(stream))  # the stream is open once it waits for data
    await asyncio.sleep(0)
    for chunk in (b"1", b"2"):
        service.publish(chunk)
    assert (await first).data == b"1"
    service.publish(b"3")
    assert fallback == []
    for chunk in (b"4", b"5"):  # two held already (2 and 3): the limit
        service.publish(chunk)
    assert fallback == [b"4", b"5"]
    stopping.set()
    assert [message.data async for message in stream] == [b"2", b"3"]  # sent before the stream ends


def test_the_listener_socket_is_born_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugwire._goplugin.serve import _listen
    from plugwire._proto import load

    monkeypatch.setenv("PLUGIN_UNIX_SOCKET_DIR", str(tmp_path))
    monkeypatch.delenv("PLUGIN_UNIX_SOCKET_GROUP", raising=False)
    server = load().grpc.server(ThreadPoolExecutor(max_workers=1))
    try:
        listener = _listen(server, "unix")
        assert Path(listener.path).parent == tmp_path
        assert stat.S_IMODE(os.stat(listener.path).st_mode) == 0o600
        private = _listen(server, "unix", private=True)  # the plaintext leg behind AutoMTLS
        assert stat.S_IMODE(os.stat(private.folder).st_mode) == 0o700
    finally:
        server.stop(None).wait()
    listener.remove()
    private.remove()
    assert not os.path.exists(private.folder)


def test_plugwire_serve_over_go_plugin_needs_the_hosts_handshake() -> None:
    from plugwire._sdk.serve import serve as plugwire_serve

    with pytest.raises(ConfigError, match="transport='go-plugin' needs handshake=HandshakeConfig") as caught:
        plugwire_serve(object(), transport="go-plugin")
    assert caught.value.code == 1003
