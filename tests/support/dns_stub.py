"""A tiny authoritative DNS responder on loopback, so `dns:///` targets can be tested offline.

It answers A queries for the names it knows and gives an empty answer to everything else
(AAAA, TXT, SRV), which is all grpc's resolver needs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Mapping
from typing import Any


def _parse_question(packet: bytes) -> tuple[str, int, int]:
    """The queried name, type, and the offset just past the question."""
    labels: list[str] = []
    offset = 12
    while True:
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        labels.append(packet[offset : offset + length].decode("ascii").lower())
        offset += length
    qtype = struct.unpack_from("!H", packet, offset)[0]
    return ".".join(labels), qtype, offset + 4


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, records: Mapping[str, list[str]]) -> None:
        self.records = {name.lower(): list(addresses) for name, addresses in records.items()}
        self.queries: list[tuple[str, int]] = []
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            name, qtype, end = _parse_question(data)
        except (IndexError, UnicodeDecodeError, struct.error):
            return
        self.queries.append((name, qtype))
        answers = self.records.get(name, []) if qtype == 1 else []
        known = name in self.records
        flags = 0x8580 if known else 0x8583  # authoritative answer; NXDOMAIN for unknown names
        header = struct.pack("!HHHHHH", struct.unpack_from("!H", data)[0], flags, 1, len(answers), 0, 0)
        body = data[12:end]
        for address in answers:
            body += struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + ipaddress.IPv4Address(address).packed
        assert self.transport is not None
        self.transport.sendto(header + body, addr)


class DnsStub:
    """Serve `records` (name -> IPv4 addresses) on 127.0.0.1:<port> over UDP."""

    def __init__(self, records: Mapping[str, list[str]]) -> None:
        self._protocol = _Responder(records)
        self.port = 0

    @property
    def queries(self) -> list[tuple[str, int]]:
        """Every (name, type) asked so far."""
        return self._protocol.queries

    async def __aenter__(self) -> DnsStub:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self._protocol, local_addr=("127.0.0.1", 0))
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()
