"""A test plugin echoing a request of every type the codecs map
(tests/integration/transports/test_subprocess_codecs.py)."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid

import msgspec

import plugwire


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Everything(msgspec.Struct):
    data: bytes = b""
    when: datetime.datetime = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    day: datetime.date = datetime.date(2000, 1, 1)
    ident: uuid.UUID = uuid.UUID(int=0)
    amount: decimal.Decimal = decimal.Decimal(0)
    color: Color = Color.RED
    level: Level = Level.LOW
    tags: frozenset[str] = frozenset()
    pair: tuple[int, str] = (0, "")
    by_number: dict[int, bytes] = msgspec.field(default_factory=dict)
    by_id: dict[uuid.UUID, float] = msgspec.field(default_factory=dict)


class TypedEcho(plugwire.Plugin[Everything, Everything]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="typed-echo", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Everything) -> Everything:
        return request


if __name__ == "__main__":
    import sys

    codecs = tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else ("msgpack", "json")
    plugwire.serve(TypedEcho(), codecs=codecs)  # type: ignore[arg-type]
