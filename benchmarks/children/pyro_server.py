"""Pyro5 echo object on loopback: prints its URI, serves until its stdin closes."""

from __future__ import annotations

import os
import sys
import threading

import Pyro5.api  # type: ignore[import-untyped,unused-ignore]


@Pyro5.api.expose
class Echo:
    def echo(self, data: bytes) -> bytes:
        return data


def _exit_on_eof() -> None:
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    daemon = Pyro5.api.Daemon(host="127.0.0.1", port=0)
    uri = daemon.register(Echo, "echo")
    threading.Thread(target=_exit_on_eof, daemon=True).start()
    print(uri, flush=True)
    daemon.requestLoop()


if __name__ == "__main__":
    main()
