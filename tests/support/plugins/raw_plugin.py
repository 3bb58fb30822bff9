"""A plugin written from docs/protocol.md alone: no plugwire import, JSON codec, and a
misbehaviour per mode (argv[1]) for the fault tests.

Modes: ok, junk, silent, half-eof, half-stall, oversize, bad-envelope, stray-ids,
version2, refuse-version, no-read, ignore-term, fork-holder, stderr-flood, exit0-once,
crash-after-first, deep-answer (op "hold" is answered only with the next op "deep", in one
write with a result nested 3,000 levels deep), mute (answers only its first call, then reads
every frame and answers none), terse-errors (refuses an unknown method with an `error`
that has no `message`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time
from typing import Any

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
STATE = os.environ.get("RAW_PLUGIN_STATE", "")
IN = sys.stdin.buffer
OUT = sys.stdout.buffer


def bump_state() -> int:
    """How many times this plugin has started before (persisted in RAW_PLUGIN_STATE)."""
    if not STATE:
        return 0
    count = 0
    if os.path.exists(STATE):
        with open(STATE) as f:
            count = int(f.read() or 0)
    with open(STATE, "w") as f:
        f.write(str(count + 1))
    return count


def read_exact(n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = IN.read(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def read_frame() -> dict[str, Any]:
    (size,) = struct.unpack(">I", read_exact(4))
    message: dict[str, Any] = json.loads(read_exact(size))
    return message


def write_frame(message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    OUT.write(struct.pack(">I", len(body)) + body)
    OUT.flush()


def hello() -> None:
    host = read_frame()
    assert host["type"] == "hello", host
    if MODE == "refuse-version":
        write_frame({"type": "error", "code": 2006, "message": "I only speak protocol 7"})
        sys.exit(1)
    version = 2 if MODE == "version2" else 1
    info = {"name": "raw", "version": "0.1.0"}
    write_frame({"type": "hello", "version": version, "codec": "json", "info": info, "max_frame": 1 << 20})


def main() -> None:
    if os.environ.get("PLUGWIRE_MAGIC_COOKIE") is None:
        sys.stderr.write("run me from a plugwire host\n")
        sys.exit(1)
    starts = bump_state()
    if MODE == "crash-after-first" and starts > 0:
        sys.stderr.write(f"crashing on start {starts}\n")
        sys.exit(1)
    if MODE == "junk":
        OUT.write(b"Starting raw plugin v0.1 ...\n")
        OUT.flush()
        time.sleep(30)
    if MODE == "silent":
        time.sleep(30)
    hello()
    if MODE == "exit0-once" and starts == 0:
        sys.exit(0)
    if MODE == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if MODE == "no-read":
        time.sleep(30)
    if MODE == "stderr-flood":
        line = b"x" * 1023 + b"\n"
        sys.stderr.buffer.write(b"y" * (2 * 1024 * 1024) + b"\n")  # one 2 MiB line
        for _ in range(8 * 1024):  # then 8 MiB of 1 KiB lines
            sys.stderr.buffer.write(line)
        sys.stderr.buffer.write(b"flood done\n")
        sys.stderr.flush()
    serve()


DEEP = 100_000  # deeper than any decoder goes (the C recursion limit is about 10000 on 3.13)


def frame_bytes(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


def serve() -> None:
    held: list[int] = []
    answered = 0
    while True:
        message = read_frame()
        kind = message["type"]
        if kind == "shutdown":
            if MODE == "ignore-term":
                continue
            sys.exit(0)
        if kind == "health":
            write_frame({"type": "result", "id": message["id"], "payload": {"status": "healthy", "message": "raw"}})
            continue
        if kind != "call":
            continue
        call_id = message["id"]
        payload = message["payload"]
        op = payload.get("op", "echo") if isinstance(payload, dict) else "echo"
        if MODE == "terse-errors" and message.get("method", "execute") != "execute":
            write_frame({"type": "error", "id": call_id, "code": 2007})  # no "message"
            continue
        if MODE == "mute" and answered:
            continue
        answered += 1
        if MODE == "deep-answer" and op == "hold":
            held.append(call_id)
            continue
        if MODE == "deep-answer" and op == "deep":
            # A correct answer, then one nested too deep for any decoder, in the same write.
            good = b"".join(frame_bytes({"type": "result", "id": i, "payload": {"text": "held"}}) for i in held)
            body = (
                b'{"type":"result","id":%d,"payload":{"text":"x","pid":' % call_id + b"[" * DEEP + b"]" * DEEP + b"}}"
            )
            OUT.write(good + struct.pack(">I", len(body)) + body)
            OUT.flush()
            held.clear()
            continue
        if MODE in ("half-eof", "half-stall"):
            OUT.write(struct.pack(">I", 100) + b'{"type":')
            OUT.flush()
            if MODE == "half-stall":
                time.sleep(30)
                sys.exit(0)
            # End the stream but stay alive until the host reacts, so the host always sees the
            # truncated frame (end of stream) before it could see the process exit.
            socket.socket(fileno=os.dup(OUT.fileno())).shutdown(socket.SHUT_WR)
            os.read(0, 1 << 20)  # returns when the host closes its end (or stops this process)
            sys.exit(0)
        if MODE == "oversize":
            OUT.write(struct.pack(">I", 0x7FFFFFF0))
            OUT.flush()
            time.sleep(30)
        if MODE == "bad-envelope":
            OUT.write(struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1")
            OUT.flush()
            time.sleep(30)
        if MODE == "stray-ids":
            write_frame({"type": "result", "id": call_id + 1000, "payload": {"text": "unknown"}})
            write_frame({"type": "result", "id": call_id, "payload": payload})
            write_frame({"type": "result", "id": call_id, "payload": {"text": "duplicate"}})
            continue
        if op == "grandchild" and MODE == "fork-holder":
            pid = os.fork()
            if pid == 0:  # the grandchild keeps stdout (and stderr) open, and sleeps
                time.sleep(60)
                os._exit(0)
            with open(payload["text"], "w") as f:
                f.write(str(pid))
            write_frame({"type": "result", "id": call_id, "payload": {"text": str(pid)}})
            continue
        if op == "exit":
            sys.stderr.write("exiting on request\n")
            sys.stderr.flush()
            sys.exit(0)
        if op == "sleep":
            time.sleep(float(payload.get("seconds", 0)))
        write_frame({"type": "result", "id": call_id, "payload": payload})


if __name__ == "__main__":
    main()
