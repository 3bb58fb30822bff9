"""A plugin with four deliberate defects, for the conformance checker's test: it runs
without the magic cookie, answers health with the wrong shape, ignores shutdown, and waits
for the body of an oversized frame instead of refusing it. No plugwire code."""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

IN = sys.stdin.buffer
OUT = sys.stdout.buffer


def read_exact(n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = IN.read(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def send(message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    OUT.write(struct.pack(">I", len(body)) + body)
    OUT.flush()


def main() -> None:
    while True:
        (size,) = struct.unpack(">I", read_exact(4))
        message = json.loads(read_exact(size))  # defect: no limit, waits for any length
        kind = message["type"]
        if kind == "hello":
            send({"type": "hello", "version": 1, "codec": "json", "max_frame": 1024, "info": {"name": "broken"}})
        elif kind == "call":
            if message.get("method", "execute") != "execute":
                send({"type": "error", "id": message["id"], "code": 2007, "message": "no", "retryable": False})
            else:
                send({"type": "result", "id": message["id"], "payload": message["payload"]})
        elif kind == "health":
            send({"type": "result", "id": message["id"], "payload": {"ok": True}})  # defect: no status
        # defect: "shutdown" is ignored


if __name__ == "__main__":
    main()
