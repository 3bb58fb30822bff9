"""The handshake of wire protocol v1: environment variables, version and codec negotiation.

The host starts a plugin with `PLUGWIRE_MAGIC_COOKIE` (so a plugin run by hand can tell a
human what it is), `PLUGWIRE_PROTOCOL_VERSIONS` and `PLUGWIRE_PLUGIN_NAME`, then sends a
`hello`; the plugin answers with its own `hello` or an `error`. Both handshake frames are
JSON whatever codec the rest of the connection uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from .._codec import CODECS, CodecName
from .._errors import ErrorCode, ProtocolError

__all__ = [
    "COOKIE_ENV",
    "MAGIC_COOKIE",
    "NAME_ENV",
    "NOT_A_PLUGIN_HOST_MESSAGE",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "VERSIONS_ENV",
    "auth_summary",
    "choose_codec",
    "choose_version",
    "handshake_env",
    "parse_versions",
]

COOKIE_ENV: Final = "PLUGWIRE_MAGIC_COOKIE"
VERSIONS_ENV: Final = "PLUGWIRE_PROTOCOL_VERSIONS"
NAME_ENV: Final = "PLUGWIRE_PLUGIN_NAME"
# Not a secret: it only tells a plugin that a plugwire host started it.
MAGIC_COOKIE: Final = "8c2f9b1e4d7a4f6b-plugwire"
PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)

NOT_A_PLUGIN_HOST_MESSAGE: Final = (
    "This is a plugwire plugin. It is not meant to be run by hand: a plugwire host starts it "
    "and talks to it over stdin/stdout (see docs/protocol.md)."
)


def handshake_env(name: str, versions: Sequence[int] = SUPPORTED_VERSIONS) -> dict[str, str]:
    """The protocol's environment variables for a plugin process."""
    return {
        COOKIE_ENV: MAGIC_COOKIE,
        VERSIONS_ENV: ",".join(str(v) for v in versions),
        NAME_ENV: name,
    }


def parse_versions(text: str) -> tuple[int, ...]:
    """Parse `PLUGWIRE_PROTOCOL_VERSIONS` ("1" or "1,2"); junk entries are skipped."""
    return tuple(int(part) for part in text.split(",") if part.strip().isdigit())


def choose_version(offered: Iterable[int], supported: Iterable[int] = SUPPORTED_VERSIONS) -> int:
    """The highest version both sides speak.

    Raises:
        ProtocolError: No common version (2006).
    """
    offered = list(offered)
    supported = list(supported)
    common = set(offered) & set(supported)
    if not common:
        raise ProtocolError(
            f"no common protocol version: host offers {offered}, plugin speaks {supported}",
            code=ErrorCode.NO_COMMON_VERSION,
            details={"offered": offered, "supported": supported},
        )
    return max(common)


def choose_codec(offered: Iterable[str], supported: Iterable[str] = CODECS) -> CodecName:
    """The first codec in the host's order of preference that the plugin supports.

    Raises:
        ProtocolError: No common codec (2005).
    """
    offered = list(offered)
    supported = list(supported)
    for codec in offered:
        if codec in supported and codec in CODECS:
            return codec
    raise ProtocolError(
        f"no common codec: host offers {offered}, plugin speaks {supported}", code=ErrorCode.HANDSHAKE_FAILED
    )


def auth_summary(auth: Mapping[str, str]) -> str:
    """Names of the credential keys (never their values), for log messages."""
    return ", ".join(sorted(auth)) or "none"
