"""A plugin written from docs/protocol.md alone (JSON codec, no plugwire import) that leaves
one field out of one message, to compare what `check_plugin` reports with what a host raises.

argv[1] is `MESSAGE:FIELD`: MESSAGE is `hello`, `result` (its answer to a call) or `error`
(its answer to a call, which it refuses); FIELD is a dotted path into that message
(`info.name`), or `-` to leave nothing out; `FIELD=VALUE` sets the field to the string
VALUE instead (`hello:info.name=`: an empty name).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Any

MESSAGE, _, FIELD = (sys.argv[1] if len(sys.argv) > 1 else "hello:-").partition(":")
IN = sys.stdin.buffer
OUT = sys.stdout.buffer


def read_frame() -> dict[str, Any] | None:
    header = IN.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack(">I", header)
    message: dict[str, Any] = json.loads(IN.read(size))
    return message


def write_frame(kind: str, message: dict[str, Any]) -> None:
    if kind == MESSAGE and FIELD != "-":
        path, assign, value = FIELD.partition("=")
        *parents, last = path.split(".")
        inner = message
        for part in parents:
            inner = inner[part]
        if assign:
            inner[last] = value
        else:
            del inner[last]
    body = json.dumps(message).encode()
    OUT.write(struct.pack(">I", len(body)) + body)
    OUT.flush()


def main() -> None:
    if os.environ.get("PLUGWIRE_MAGIC_COOKIE") is None:
        sys.stderr.write("a plugwire host starts this plugin\n")
        sys.exit(1)
    read_frame()  # the host's hello
    info = {"name": "fields", "version": "1.0.0"}
    write_frame("hello", {"type": "hello", "version": 1, "codec": "json", "info": info, "max_frame": 1 << 20})
    while (message := read_frame()) is not None:
        kind, call_id = message["type"], message.get("id", 0)
        if kind == "shutdown":
            return
        if kind == "health":
            write_frame("health", {"type": "result", "id": call_id, "payload": {"status": "healthy"}})
        elif kind == "call" and MESSAGE == "error":
            write_frame("error", {"type": "error", "id": call_id, "code": 1203, "message": "no", "retryable": False})
        elif kind == "call":
            write_frame("result", {"type": "result", "id": call_id, "payload": {"ok": True}})


if __name__ == "__main__":
    main()
