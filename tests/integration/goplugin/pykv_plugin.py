"""A Python KV plugin for go-plugin hosts: kv.proto's service (stubs from tests.support.golang's
kv_stubs_dir() on PYTHONPATH) served by `plugwire._goplugin.serve`.

At start it logs one line per level ("pykv level debug" ... "pykv level critical", and one at
level 5, "pykv level trace") and prints "pykv stray print" on stdout before serving (the
handshake line must survive it). Put logs at info and Get at debug, with the key as a field.

Knobs (environment):
    PYKV_FAULT=exit-on-put   os._exit(7) inside the first Put
    PYKV_FAULT=slow-put      Put takes PYKV_SLOW seconds (default 0.5)
    PYKV_VERSION=N           serve app protocol version N instead of 1
    PYKV_NETWORK=tcp         listen on TCP
    PYKV_ASYNC=1             async servicer methods (plain `def` ones otherwise)
    PYKV_PRINT=1             Put also prints "stdout put KEY" on stdout
"""

from __future__ import annotations

import logging
import os
import sys
import time

import kv_pb2
import kv_pb2_grpc

from plugwire._goplugin import HandshakeConfig
from plugwire._goplugin.serve import serve

log = logging.getLogger("pykv")
FAULT = os.environ.get("PYKV_FAULT", "")


class KV(kv_pb2_grpc.KVServicer):
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def Put(self, request: kv_pb2.PutRequest, context: object) -> kv_pb2.Empty:
        log.info("put", extra={"key": request.key})
        if os.environ.get("PYKV_PRINT"):
            print(f"stdout put {request.key}", flush=True)
        if FAULT == "exit-on-put":
            os._exit(7)
        if FAULT == "slow-put":
            time.sleep(float(os.environ.get("PYKV_SLOW", "0.5")))
        self.values[request.key] = request.value
        return kv_pb2.Empty()

    def Get(self, request: kv_pb2.GetRequest, context: object) -> kv_pb2.GetResponse:
        log.debug("get", extra={"key": request.key})
        return kv_pb2.GetResponse(value=self.values.get(request.key, b""))


class AsyncKV(KV):
    async def Put(self, request: kv_pb2.PutRequest, context: object) -> kv_pb2.Empty:  # type: ignore[override]
        return KV.Put(self, request, context)

    async def Get(self, request: kv_pb2.GetRequest, context: object) -> kv_pb2.GetResponse:  # type: ignore[override]
        return KV.Get(self, request, context)


def register(server: object) -> None:
    servicer = AsyncKV() if os.environ.get("PYKV_ASYNC") else KV()
    kv_pb2_grpc.add_KVServicer_to_server(servicer, server)
    log.log(5, "pykv level trace")
    for level in ("debug", "info", "warning", "error", "critical"):
        getattr(log, level)(f"pykv level {level}")
    print("pykv stray print")
    sys.stdout.flush()


if __name__ == "__main__":
    serve(
        register,
        handshake=HandshakeConfig(
            protocol_version=int(os.environ.get("PYKV_VERSION", "1")),
            magic_cookie_key="BASIC_PLUGIN",
            magic_cookie_value="hello",
        ),
        network="tcp" if os.environ.get("PYKV_NETWORK") == "tcp" else "unix",
        log_level=1,
    )
