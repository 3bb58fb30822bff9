"""HashiCorp go-plugin's handshake, without I/O: its configuration, its environment variables,
the app protocol version negotiation and the one line a plugin prints on stdout.

A go-plugin host starts a plugin with its magic cookie (`KEY=value`, only so that a plugin run
by hand can say it is one), `PLUGIN_PROTOCOL_VERSIONS` (the app versions it speaks) and,
optionally, the listener's settings. The plugin answers with one line on stdout,
`CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVERCERT`: the core protocol (always 1), the app version
it picked, `unix` or `tcp` and the address it listens on, `grpc` or `netrpc`, and, under
AutoMTLS, its certificate as unpadded base64 DER. Both ends of plugwire's go-plugin support
share these rules: a plugin plugwire serves writes the line, a host plugwire runs reads it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from .._errors import ConfigError, ErrorCode, ProtocolError

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

CORE_PROTOCOL_VERSION: Final = 1
PROTOCOL_VERSIONS_ENV: Final = "PLUGIN_PROTOCOL_VERSIONS"
MIN_PORT_ENV: Final = "PLUGIN_MIN_PORT"
MAX_PORT_ENV: Final = "PLUGIN_MAX_PORT"
UNIX_SOCKET_DIR_ENV: Final = "PLUGIN_UNIX_SOCKET_DIR"
UNIX_SOCKET_GROUP_ENV: Final = "PLUGIN_UNIX_SOCKET_GROUP"
CLIENT_CERT_ENV: Final = "PLUGIN_CLIENT_CERT"  # the host's AutoMTLS certificate, PEM
HEALTH_SERVICE: Final = "plugin"  # the grpc.health.v1 service name go-plugin checks

Network = Literal["unix", "tcp"]
Protocol = Literal["grpc", "netrpc"]
NETWORKS: Final[tuple[Network, ...]] = ("unix", "tcp")
PROTOCOLS: Final[tuple[Protocol, ...]] = ("grpc", "netrpc")

_QUOTE_LIMIT = 200  # characters of a bad line quoted in an error


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, slots=True)
class HandshakeConfig:
    """What a go-plugin host and its plugins agree on before they start: the app protocol
    version and the magic cookie (go-plugin's `plugin.HandshakeConfig`).

    Args:
        protocol_version: The app protocol version (go-plugin's `ProtocolVersion`), >= 0.
        magic_cookie_key: The environment variable the host sets, e.g. `"BASIC_PLUGIN"`.
        magic_cookie_value: Its value, e.g. `"hello"`. Not a secret: it only tells a plugin
            that a host started it.

    Raises:
        ConfigError: A version that is not a non-negative integer, an empty cookie key or value,
            or a key that cannot be an environment variable's name (1003).
    """

    protocol_version: int
    magic_cookie_key: str
    magic_cookie_value: str

    def __post_init__(self) -> None:
        if not _is_count(self.protocol_version):
            raise ConfigError(
                f"HandshakeConfig.protocol_version must be an integer >= 0, not {self.protocol_version!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
        key, value = self.magic_cookie_key, self.magic_cookie_value
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ConfigError(
                f"HandshakeConfig.magic_cookie_key must be an environment variable name "
                f"(not empty, no '=' or NUL), not {key!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
        if not isinstance(value, str) or not value or "\0" in value:
            raise ConfigError(
                f"HandshakeConfig.magic_cookie_value must be a non-empty string without NUL, not {value!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )

    def cookie_matches(self, environ: Mapping[str, str]) -> bool:
        """Whether `environ` holds this magic cookie (a go-plugin host started the process)."""
        return environ.get(self.magic_cookie_key) == self.magic_cookie_value


@dataclass(frozen=True, slots=True)
class HandshakeLine:
    """The line a go-plugin plugin prints on stdout once it listens.

    Args:
        app_protocol_version: The app protocol version the plugin serves.
        network: `"unix"` or `"tcp"`.
        address: The socket path (unix) or `host:port` (tcp) the plugin listens on.
        protocol: `"grpc"` or `"netrpc"` (go-plugin's Go-only net/rpc; plugwire reads a line
            naming it but speaks gRPC only).
        server_cert: Under AutoMTLS, the plugin's certificate as base64 DER (go-plugin writes
            it unpadded); `""` without.
        core_protocol_version: go-plugin's own protocol version; 1 is the only one there is.
        multiplex: The optional seventh field of newer go-plugin servers (`true` when the
            plugin multiplexes its broker connections over one socket).

    Raises:
        ConfigError: A field that could not be written into a line: a negative version, an
            unknown network or protocol, an address that is empty or holds `|` or a line
            break, a certificate that is not base64 (1003).
    """

    app_protocol_version: int
    network: Network
    address: str
    protocol: Protocol = "grpc"
    server_cert: str = ""
    core_protocol_version: int = CORE_PROTOCOL_VERSION
    multiplex: bool = False

    def __post_init__(self) -> None:
        for name in ("app_protocol_version", "core_protocol_version"):
            if not _is_count(getattr(self, name)):
                raise ConfigError(
                    f"HandshakeLine.{name} must be an integer >= 0, not {getattr(self, name)!r}",
                    code=ErrorCode.CONFIG_INVALID_VALUE,
                )
        if self.network not in NETWORKS:
            raise ConfigError(
                f"HandshakeLine.network must be one of {NETWORKS}, not {self.network!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"HandshakeLine.protocol must be one of {PROTOCOLS}, not {self.protocol!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
        for name in ("address", "server_cert"):
            text = getattr(self, name)
            if not isinstance(text, str) or any(c in text for c in "|\r\n\0"):
                raise ConfigError(
                    f"HandshakeLine.{name} must be a string without '|', line breaks or NUL, not {text!r}",
                    code=ErrorCode.CONFIG_INVALID_VALUE,
                )
        if not self.address:
            raise ConfigError("HandshakeLine.address must not be empty", code=ErrorCode.CONFIG_INVALID_VALUE)
        if self.server_cert and _decode_cert(self.server_cert) is None:
            raise ConfigError(
                f"HandshakeLine.server_cert must be base64 DER (a certificate's bytes), not {_quote(self.server_cert)}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )

    def server_cert_der(self) -> bytes:
        """The plugin's certificate as DER bytes; `b""` when the line has none."""
        return _decode_cert(self.server_cert) or b""


def _decode_cert(text: str) -> bytes | None:
    """DER bytes from base64 with or without padding; None when not base64 or not DER."""
    try:
        der = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    # A certificate is one DER SEQUENCE: its first byte is 0x30.
    return der if der[:1] == b"\x30" else None


def _quote(text: str) -> str:
    if len(text) > _QUOTE_LIMIT:
        return repr(text[:_QUOTE_LIMIT]) + f" (… {len(text)} characters)"
    return repr(text)


def format_handshake_line(line: HandshakeLine) -> str:
    """The text of `line` as a go-plugin plugin prints it, without the final newline."""
    fields = [
        str(line.core_protocol_version),
        str(line.app_protocol_version),
        line.network,
        line.address,
        line.protocol,
        line.server_cert,
    ]
    if line.multiplex:
        fields.append("true")
    return "|".join(fields)


def _number(field: str) -> int | None:
    return int(field) if field.isascii() and field.isdigit() else None


def parse_handshake_line(
    text: str, *, app_versions: Collection[int], core_versions: Collection[int] = (CORE_PROTOCOL_VERSION,)
) -> HandshakeLine:
    """Read and check a go-plugin plugin's handshake line.

    Surrounding whitespace (the newline) is ignored, as go-plugin does. Five fields (no
    certificate, as some non-Go plugins print), six and seven (newer go-plugin's multiplexing
    flag) are accepted. Every error quotes the line.

    Args:
        text: The line the plugin printed.
        app_versions: The app protocol versions the host offered (PLUGIN_PROTOCOL_VERSIONS).
        core_versions: The core protocol versions accepted; go-plugin has only 1.

    Returns:
        The line's fields.

    Raises:
        ProtocolError: The line has fewer than 4 or more than 7 fields, a version that is not
            a decimal number, an empty address or a multiplex field that is not `true` or
            `false` (2020); a core version not accepted (2021); an app version the host did not
            offer (2022); a network other than `unix` and `tcp` (2023); a tcp address without
            a port (2024); no protocol field, or `netrpc`, or an unknown protocol (2025); a
            certificate that is not base64 DER (2026).
    """
    line = text.strip()
    quoted = _quote(line)

    def fail(code: ErrorCode, why: str) -> ProtocolError:
        return ProtocolError(
            f"go-plugin handshake line {quoted}: {why}", code=code, details={"line": line[: _QUOTE_LIMIT * 4]}
        )

    fields = line.split("|")
    if not line or not 4 <= len(fields) <= 7:
        raise fail(
            ErrorCode.GO_HANDSHAKE_MALFORMED,
            f"expected CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVERCERT, got {len(fields) if line else 0} field(s)",
        )
    core, app = _number(fields[0]), _number(fields[1])
    if core is None:
        raise fail(ErrorCode.GO_HANDSHAKE_MALFORMED, f"core protocol version {fields[0]!r} is not a number")
    if core not in core_versions:
        raise fail(
            ErrorCode.GO_CORE_VERSION_UNSUPPORTED,
            f"core protocol version {core} is not supported (supported: {sorted(core_versions)})",
        )
    if app is None:
        raise fail(ErrorCode.GO_HANDSHAKE_MALFORMED, f"app protocol version {fields[1]!r} is not a number")
    if app not in app_versions:
        raise fail(
            ErrorCode.GO_APP_VERSION_NOT_OFFERED,
            f"the plugin chose app protocol version {app}, which the host did not offer ({sorted(app_versions)})",
        )
    network, address = fields[2], fields[3]
    if network not in NETWORKS:
        raise fail(ErrorCode.GO_NETWORK_UNKNOWN, f"unknown network {network!r} (expected 'unix' or 'tcp')")
    if not address:
        raise fail(ErrorCode.GO_HANDSHAKE_MALFORMED, "the address is empty")
    if network == "tcp":
        _, colon, port = address.rpartition(":")
        number = _number(port)
        if not colon or number is None or not 0 < number < 65536:
            raise fail(ErrorCode.GO_ADDRESS_INVALID, f"tcp address {address!r} has no port (expected host:port)")
    if len(fields) == 4:
        raise fail(
            ErrorCode.GO_PROTOCOL_UNSUPPORTED,
            "no protocol field: go-plugin reads that as net/rpc, and plugwire speaks gRPC only",
        )
    protocol = fields[4]
    if protocol == "netrpc":
        raise fail(
            ErrorCode.GO_PROTOCOL_UNSUPPORTED,
            "the plugin speaks go-plugin's net/rpc protocol (Go only); plugwire speaks gRPC only",
        )
    if protocol != "grpc":
        raise fail(ErrorCode.GO_PROTOCOL_UNSUPPORTED, f"unknown protocol {protocol!r} (plugwire speaks 'grpc')")
    cert = fields[5] if len(fields) >= 6 else ""
    if cert and _decode_cert(cert) is None:
        raise fail(ErrorCode.GO_SERVER_CERT_INVALID, "the server certificate is not base64 DER")
    multiplex = False
    if len(fields) == 7:
        if fields[6] not in ("true", "false"):
            raise fail(ErrorCode.GO_HANDSHAKE_MALFORMED, f"multiplex field {fields[6]!r} is not 'true' or 'false'")
        multiplex = fields[6] == "true"
    return HandshakeLine(
        core_protocol_version=core,
        app_protocol_version=app,
        network="unix" if network == "unix" else "tcp",
        address=address,
        protocol="grpc",
        server_cert=cert,
        multiplex=multiplex,
    )


def negotiate_app_version(offered: str | None, supported: Collection[int]) -> int:
    """The app protocol version a plugin serves: the highest of `supported` that the host
    offered in PLUGIN_PROTOCOL_VERSIONS (a comma list, e.g. `"1,2"`). A host that sets no
    list (an old go-plugin) gets the lowest supported version, as go-plugin's own servers do.

    Args:
        offered: The value of PLUGIN_PROTOCOL_VERSIONS, or None when it is not set.
        supported: The app versions the plugin speaks (not empty).

    Raises:
        ProtocolError: An entry that is not a number, or no version in common (2027); the
            message quotes both lists.
        ConfigError: `supported` is empty (1003).
    """
    ours = sorted(set(supported))
    if not ours:
        raise ConfigError("the plugin supports no app protocol version", code=ErrorCode.CONFIG_INVALID_VALUE)
    if offered is None or not offered.strip():
        return ours[0]
    entries = [entry.strip() for entry in offered.split(",")]
    numbers = [_number(entry) for entry in entries]
    if any(n is None for n in numbers):
        raise ProtocolError(
            f"{PROTOCOL_VERSIONS_ENV}={_quote(offered)} is not a comma-separated list of numbers",
            code=ErrorCode.GO_NO_COMMON_APP_VERSION,
            details={"offered": offered, "supported": ours},
        )
    common = set(ours).intersection(n for n in numbers if n is not None)
    if not common:
        raise ProtocolError(
            f"no common app protocol version: the host offers {PROTOCOL_VERSIONS_ENV}={_quote(offered)}, "
            f"the plugin speaks {ours}",
            code=ErrorCode.GO_NO_COMMON_APP_VERSION,
            details={"offered": offered, "supported": ours},
        )
    return max(common)
