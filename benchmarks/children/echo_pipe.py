"""Echo child for the pipe floors: read length-prefixed frames on fd 0, write them back on fd 1.

Plain blocking reads and writes on the raw descriptors, nothing else: the cheapest thing a
plugin process can do, so the host side is all that differs between the floors that use it.
Exits when its stdin closes.
"""

from __future__ import annotations

import os
import struct
import sys


def read_exact(fd: int, size: int) -> bytes | None:
    """Exactly `size` bytes from `fd`, or None at end of file."""
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main() -> int:
    while True:
        header = read_exact(0, 4)
        if header is None:
            return 0
        (size,) = struct.unpack(">I", header)
        body = read_exact(0, size) if size else b""
        if body is None:
            return 1
        write_all(1, header + body)


if __name__ == "__main__":
    sys.exit(main())
