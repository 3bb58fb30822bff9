"""rpyc echo service on loopback: prints its port, serves until its stdin closes."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading

import rpyc  # type: ignore[import-untyped,unused-ignore]
from rpyc.utils.server import ThreadedServer  # type: ignore[import-untyped,unused-ignore]


class EchoService(rpyc.Service):  # type: ignore[misc]
    def exposed_echo(self, data: bytes) -> bytes:
        return data


class ReadyServer(ThreadedServer):  # type: ignore[misc]
    """Prints its port once it listens (printing before `start()` races the first connect), no Nagle."""

    def _listen(self) -> None:
        super()._listen()
        print(self.port, flush=True)

    def _accept_method(self, sock: socket.socket) -> None:
        # Without TCP_NODELAY, pipelined small replies wait on delayed ACKs (~40 ms stalls).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super()._accept_method(sock)


def _exit_on_eof() -> None:
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    quiet = logging.getLogger("bench.rpyc")
    quiet.setLevel(logging.WARNING)
    server = ReadyServer(EchoService, hostname="127.0.0.1", port=0, logger=quiet)
    threading.Thread(target=_exit_on_eof, daemon=True).start()
    server.start()


if __name__ == "__main__":
    main()
