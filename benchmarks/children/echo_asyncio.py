"""Echo child of the asyncio floor: a bare asyncio echo over its stdin and stdout pipes.

What someone writes by hand with asyncio's streams and no plugwire code: read a 4-byte
big-endian length and that many bytes, write the frame back, drain, one frame at a time.
Exits when its stdin closes.
"""

from __future__ import annotations

import asyncio
import os

# The allocator's steady state, as in the harness (`benchmarks/_runner.py: settle_allocator`):
# without it every 256 KiB stream read below would also cost an mmap and an munmap.
_SETTLE = bytes(4 << 20)
del _SETTLE


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(1, "wb", 0))
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    while True:
        try:
            header = await reader.readexactly(4)
        except asyncio.IncompleteReadError:
            return
        body = await reader.readexactly(int.from_bytes(header, "big"))
        writer.write(header + body)
        await writer.drain()


if __name__ == "__main__":
    asyncio.run(main())
