"""Floors and peers side by side (info rows: they judge nothing, they show what plugwire is up against).

Latency rows put every peer against the blocking-pipes floor; throughput rows (64 calls in
flight on one connection) against the asyncio floor with 64 frames in flight.
"""

from __future__ import annotations

from .._model import Case, Kind, Versus, register
from ..baselines.peers import GRPC_AIO, GRPC_AIO_X64, MP_PIPE, PYRO5, RPYC, RPYC_X64
from ..baselines.pipes import ASYNCIO_FLOOR, ASYNCIO_FLOOR_X64, ASYNCIO_HOST_FLOOR, PIPES_FLOOR

_SMALL = "100-byte payload echoed"

for _name, _side in (
    ("floors.asyncio_pipes", ASYNCIO_FLOOR),
    ("floors.asyncio_host", ASYNCIO_HOST_FLOOR),
    ("peers.mp_pipe", MP_PIPE),
    ("peers.rpyc", RPYC),
    ("peers.pyro5", PYRO5),
    ("peers.grpc_aio", GRPC_AIO),
):
    register(Case(_name, _side, (Versus(PIPES_FLOOR),), note=f"info: {_SMALL}, one call at a time."))

register(
    Case(
        "floors.asyncio_pipes.peers",
        ASYNCIO_FLOOR,
        (Versus(PYRO5), Versus(RPYC)),
        note=f"info: {_SMALL}, one call at a time: issue 3's baseline (a), the bare asyncio echo with no "
        "plugwire code, against the peers, to show where 'at most half the latency of Pyro5' falls "
        "beside the floor itself.",
    )
)

for _name, _side in (("peers.rpyc.x64", RPYC_X64), ("peers.grpc_aio.x64", GRPC_AIO_X64)):
    register(
        Case(
            _name,
            _side,
            (Versus(ASYNCIO_FLOOR_X64),),
            kind=Kind.THROUGHPUT,
            note=f"info: {_SMALL}, 64 calls in flight on one connection; calls per second.",
        )
    )
