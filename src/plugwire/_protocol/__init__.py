"""Wire protocol v1 (layer 2): framing, envelope messages, the handshake, and each end's
protocol session (sans-I/O state machines: `HostSession`, `PluginSession`).

Shared by the host transport and the plugin SDK; imports only layers 0-1.
"""

from __future__ import annotations

from .framing import FrameReader
from .handshake import (
    COOKIE_ENV,
    MAGIC_COOKIE,
    NAME_ENV,
    NOT_A_PLUGIN_HOST_MESSAGE,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    VERSIONS_ENV,
    choose_codec,
    choose_version,
    handshake_env,
    parse_versions,
)
from .host_session import REMEMBERED_CANCELS, HostSession
from .messages import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    NESTING_GUARANTEED,
    CallContext,
    CallMsg,
    CancelMsg,
    EnvelopeCodec,
    ErrorMsg,
    HealthMsg,
    HostHello,
    HostMessage,
    InlineResultMsg,
    PluginHello,
    PluginMessage,
    ResultMsg,
    ShutdownMsg,
    decode_handshake,
    handshake_frame,
    pack_length,
    too_deep,
)
from .plugin_session import PluginSession
from .session import Session, Token

__all__ = [
    "COOKIE_ENV",
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "MAGIC_COOKIE",
    "NAME_ENV",
    "NESTING_GUARANTEED",
    "NOT_A_PLUGIN_HOST_MESSAGE",
    "PROTOCOL_VERSION",
    "REMEMBERED_CANCELS",
    "SUPPORTED_VERSIONS",
    "VERSIONS_ENV",
    "CallContext",
    "CallMsg",
    "CancelMsg",
    "EnvelopeCodec",
    "ErrorMsg",
    "FrameReader",
    "HealthMsg",
    "HostHello",
    "HostMessage",
    "HostSession",
    "InlineResultMsg",
    "PluginHello",
    "PluginMessage",
    "PluginSession",
    "ResultMsg",
    "Session",
    "ShutdownMsg",
    "Token",
    "choose_codec",
    "choose_version",
    "decode_handshake",
    "handshake_env",
    "handshake_frame",
    "pack_length",
    "parse_versions",
    "too_deep",
]
