"""HashiCorp go-plugin interoperability (layer 2, beside the wire protocol): what a plugwire
host loading a go-plugin plugin and a Python plugin served to a Go host share. Pure: no I/O,
no grpc import, so the plugin side may load it.
"""

from __future__ import annotations

from .handshake import (
    CLIENT_CERT_ENV,
    CORE_PROTOCOL_VERSION,
    HEALTH_SERVICE,
    MAX_PORT_ENV,
    MIN_PORT_ENV,
    NETWORKS,
    PROTOCOL_VERSIONS_ENV,
    PROTOCOLS,
    UNIX_SOCKET_DIR_ENV,
    UNIX_SOCKET_GROUP_ENV,
    HandshakeConfig,
    HandshakeLine,
    Network,
    Protocol,
    format_handshake_line,
    negotiate_app_version,
    parse_handshake_line,
)

__all__ = [
    "CLIENT_CERT_ENV",
    "CORE_PROTOCOL_VERSION",
    "HEALTH_SERVICE",
    "MAX_PORT_ENV",
    "MIN_PORT_ENV",
    "NETWORKS",
    "PROTOCOLS",
    "PROTOCOL_VERSIONS_ENV",
    "UNIX_SOCKET_DIR_ENV",
    "UNIX_SOCKET_GROUP_ENV",
    "HandshakeConfig",
    "HandshakeLine",
    "Network",
    "Protocol",
    "format_handshake_line",
    "negotiate_app_version",
    "parse_handshake_line",
]
