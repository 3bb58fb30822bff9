"""A codec decodes what it encodes, both ways, for every type it maps: also when the plugin
negotiated another codec than the host's (a JSON-only plugin written in another language, or
a JSON host with a msgpack plugin). Issue 15, item 4."""

from __future__ import annotations

import datetime
import decimal
import sys
import uuid

import pytest

import plugwire
from plugwire._codec import Encoded, TypedCodec
from tests.support.plugins.typed_echo_plugin import Color, Everything, Level
from tests.support.procguard import PLUGINS, plugin_env, python_plugin

pytestmark = pytest.mark.usefixtures("no_leaks")

SAMPLE = Everything(
    data=b"\x00\xffbinary",
    when=datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.UTC),
    day=datetime.date(2024, 2, 29),
    ident=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    amount=decimal.Decimal("12.50"),
    color=Color.BLUE,
    level=Level.HIGH,
    tags=frozenset({"a", "b"}),
    pair=(7, "seven"),
    by_number={1: b"one", 2: b"\x02"},
    by_id={uuid.UUID(int=1): 1.5},
)


@pytest.mark.parametrize(("host", "plugin"), [("msgpack", "json"), ("json", "msgpack")])
def test_a_typed_codec_decodes_what_the_other_codec_encoded(host: str, plugin: str) -> None:
    mine: TypedCodec[Everything] = TypedCodec(Everything, host, role="response")  # type: ignore[arg-type]
    theirs = mine.in_codec(plugin)  # type: ignore[arg-type]
    assert mine.decode(Encoded(theirs.encode(SAMPLE), plugin)) == SAMPLE  # type: ignore[arg-type]


async def test_a_json_plugin_without_plugwire_returns_bytes_and_int_keys_to_a_msgpack_host() -> None:
    # raw_plugin.py speaks JSON only and echoes the payload it got: base64 text, string keys.
    async with plugwire.AsyncPluginManager(Everything, Everything) as manager:
        await manager.register(python_plugin("raw_plugin.py", "ok"), name="raw")
        assert await manager.execute("raw", SAMPLE) == SAMPLE


@pytest.mark.parametrize(("host", "plugin"), [("msgpack", "json"), ("json", "msgpack"), ("json", "json")])
async def test_every_mapped_type_survives_a_round_trip_whatever_the_two_codecs(host: str, plugin: str) -> None:
    source = plugwire.subprocess(sys.executable, str(PLUGINS / "typed_echo_plugin.py"), plugin, env=plugin_env())
    async with plugwire.AsyncPluginManager(Everything, Everything, codec=host) as manager:  # type: ignore[arg-type]
        await manager.register(source, name="typed")
        assert await manager.execute("typed", SAMPLE) == SAMPLE


def test_an_undecodable_answer_in_the_other_codec_is_a_coded_validation_error() -> None:
    codec: TypedCodec[Everything] = TypedCodec(Everything, "msgpack", role="response")
    with pytest.raises(plugwire.errors.ResponseValidationError):
        codec.decode(Encoded(b'{"data": "not base64!"}', "json"))
    with pytest.raises(plugwire.errors.ResponseValidationError):
        codec.decode(Encoded(b"not json", "json"))
