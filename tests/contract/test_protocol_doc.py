"""docs/protocol.md's table of required fields is the one the host, the SDK and `plugwire
check` decode with: every message's fields, required or optional with its default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from plugwire._errors import ErrorCode, ProtocolError
from plugwire._models import PluginInfo
from plugwire._protocol import (
    CallContext,
    CallMsg,
    CancelMsg,
    EnvelopeCodec,
    ErrorMsg,
    HealthMsg,
    HostHello,
    PluginHello,
    PluginMessage,
    ResultMsg,
    ShutdownMsg,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

MESSAGES: dict[str, type[msgspec.Struct]] = {
    "`hello` (host)": HostHello,
    "`hello` (plugin)": PluginHello,
    "`hello` (plugin) `info`": PluginInfo,
    "`call`": CallMsg,
    "`call` `ctx`": CallContext,
    "`cancel`": CancelMsg,
    "`health`": HealthMsg,
    "`shutdown`": ShutdownMsg,
    "`result`": ResultMsg,
    "`error`": ErrorMsg,
}


def documented() -> set[tuple[str, str, str]]:
    text = DOC.read_text()
    section = text[text.index("### 3.4 Required fields") : text.index("### 3.5")]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`") and cells[0] != "message":
            rows.add((cells[0], cells[1].strip("`"), cells[2]))
    return rows


def _default(field: Any) -> str:
    value = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    if isinstance(value, msgspec.Struct):
        value = {}  # an all-default nested message: written as an empty map
    return f"optional, `{json.dumps(msgspec.to_builtins(value))}`"


def defined() -> set[tuple[str, str, str]]:
    return {
        (message, field.encode_name, "required" if field.required else _default(field))
        for message, struct in MESSAGES.items()
        for field in msgspec.structs.fields(struct)
    }


def test_the_documented_required_fields_are_the_ones_the_decoders_require() -> None:
    assert documented() == defined()


def test_an_error_without_message_is_refused_by_the_host_as_the_table_says() -> None:
    assert ("`error`", "message", "required") in documented()
    with pytest.raises(ProtocolError) as caught:
        EnvelopeCodec("json", PluginMessage).decode(b'{"type": "error", "id": 1, "code": 1203}')
    assert caught.value.code == ErrorCode.ENVELOPE_INVALID
    assert "message" in caught.value.message
