"""The numbers behind the error tree: every error code (`ErrorCode`) and whether a failed
call's request may have reached the plugin (`RequestSent`). A leaf, beside `_errors`, which
re-exports both."""

from __future__ import annotations

import enum

__all__ = ["ErrorCode", "RequestSent"]


@enum.unique
class ErrorCode(enum.IntEnum):
    """Every error code plugwire uses. The meaning of each is in `docs/errors.md`."""

    # 1000 configuration
    CONFIG_INVALID = 1000
    CONFIG_UNKNOWN_KEY = 1001
    CONFIG_WRONG_TYPE = 1002
    CONFIG_INVALID_VALUE = 1003
    CONFIG_MISSING_FIELD = 1004
    CONFIG_MISSING_EXECUTABLE = 1005
    CONFIG_MISSING_ENDPOINT = 1006
    CONFIG_UNKNOWN_TRANSPORT = 1007
    CONFIG_UNKNOWN_AUTH_METHOD = 1008
    CONFIG_DUPLICATE_PLUGIN = 1009
    PLUGIN_ALREADY_REGISTERED = 1010
    MISSING_DEPENDENCY = 1011
    CONFIG_INVALID_NAME = 1012
    # 1100 authentication
    AUTH_FAILED = 1100
    AUTH_MISSING_CREDENTIALS = 1101
    AUTH_INVALID_CREDENTIALS = 1102
    AUTH_MALFORMED_CREDENTIALS = 1103
    AUTH_PERMISSION_DENIED = 1104
    AUTH_CLIENT_CERT_REQUIRED = 1105
    AUTH_CLIENT_CERT_REJECTED = 1106
    # 1200 calls
    CALL_FAILED = 1200
    PLUGIN_NOT_FOUND = 1201
    PLUGIN_DISABLED = 1202
    EXECUTION_FAILED = 1203
    TIMEOUT = 1204
    REQUEST_INVALID = 1205
    RESPONSE_INVALID = 1206
    OUTCOME_UNKNOWN = 1207
    MANAGER_CLOSED = 1208
    MANAGER_NOT_STARTED = 1209
    REPLACEMENT_FAILED = 1210
    DRAIN_CANCELLED = 1211
    # 1300 transport
    TRANSPORT_FAILED = 1300
    CONNECT_FAILED = 1301
    CONNECTION_LOST = 1302
    WRITE_TIMEOUT = 1303
    PLUGIN_STOPPING = 1304
    MESSAGE_TOO_LARGE = 1305
    TLS_HANDSHAKE_FAILED = 1306
    TLS_CERT_UNTRUSTED = 1307
    TLS_CERT_EXPIRED = 1308
    TLS_HOSTNAME_MISMATCH = 1309
    TLS_MISMATCH = 1310
    PLUGIN_STALLED = 1311
    # 1400 circuit breaker
    CIRCUIT_BREAKER = 1400
    CIRCUIT_OPEN = 1401
    # 1500 rate limit
    RATE_LIMIT = 1500
    RATE_LIMITED = 1501
    # 1600 health
    HEALTH_FAILED = 1600
    HEALTH_CHECK_FAILED = 1601
    PLUGIN_OFFLINE = 1602
    PLUGIN_CONNECTING = 1603
    # 1700 configuration files and reload
    CONFIG_FILE = 1700
    CONFIG_FILE_NOT_FOUND = 1701
    CONFIG_FILE_UNREADABLE = 1702
    CONFIG_FILE_FORMAT = 1703
    CONFIG_FILE_TOO_COMPLEX = 1704
    # 1800 security
    SECURITY = 1800
    NOT_WHITELISTED = 1801
    HASH_MISMATCH = 1802
    WHITELIST_ENTRY_DISABLED = 1803
    WHITELIST_MALFORMED = 1804
    UNKNOWN_HASH_ALGORITHM = 1805
    BAD_HASH_LENGTH = 1806
    WHITELIST_DUPLICATE_NAME = 1807
    PATH_TRAVERSAL = 1808
    UNSAFE_FILE = 1809
    SYMLINK_ESCAPE = 1810
    AUDIT_FAILED = 1811
    AUDIT_LOCATION = 1812
    ENDPOINT_NOT_WHITELISTED = 1813
    EXECUTABLE_NOT_IN_ARGV = 1814
    # 1900 registry and processes
    PROCESS = 1900
    PROCESS_SPAWN_FAILED = 1901
    PROCESS_EXITED_DURING_START = 1902
    PROCESS_START_TIMEOUT = 1903
    PROCESS_CRASHED = 1904
    PROCESS_LAUNCH_HOOK_FAILED = 1905
    # 2000 wire protocol
    PROTOCOL = 2000
    FRAME_TOO_LARGE = 2001
    FRAME_TRUNCATED = 2002
    ENVELOPE_INVALID = 2003
    HANDSHAKE_JUNK = 2004
    HANDSHAKE_FAILED = 2005
    NO_COMMON_VERSION = 2006
    UNKNOWN_METHOD = 2007
    # 2020-2039 HashiCorp go-plugin's handshake
    GO_HANDSHAKE_MALFORMED = 2020
    GO_CORE_VERSION_UNSUPPORTED = 2021
    GO_APP_VERSION_NOT_OFFERED = 2022
    GO_NETWORK_UNKNOWN = 2023
    GO_ADDRESS_INVALID = 2024
    GO_PROTOCOL_UNSUPPORTED = 2025
    GO_SERVER_CERT_INVALID = 2026
    GO_NO_COMMON_APP_VERSION = 2027
    GO_SOCKET_UNREACHABLE = 2034
    GO_AUTOMTLS_UNSUPPORTED = 2035
    GO_NOT_PLUGWIRE_SERVICE = 2036
    GO_HEALTH_NOT_SERVING = 2037
    GO_NO_CHANNEL = 2038
    # 2100 observability (metrics exporters, tracing)
    OBSERVABILITY = 2100
    METRICS_DISABLED = 2101
    EXPORTER_START_FAILED = 2102
    EXPORTER_ADDRESS_IN_USE = 2103
    EXPORTER_ALREADY_REGISTERED = 2104
    TRACING_ALREADY_ENABLED = 2105


class RequestSent(enum.Enum):
    """Whether the request of a failed call may have reached the plugin (`PluginError.request_sent`).

    The retry policy repeats a `MAYBE` failure only for an idempotent call: the plugin may
    have done the work. See docs/resilience.md for which error has which.
    """

    #: The request never left the host (refused by a policy, no connection, a timeout while
    #: waiting to send): the plugin cannot have acted on it.
    NO = "no"
    #: The request was handed to the connection and no answer says what came of it (a
    #: timeout after sending, a crash or a cut connection mid-call, or the plugin's own
    #: 1204/1207 saying it stopped mid-call): it may have been done, partly or wholly.
    MAYBE = "maybe"
    #: The plugin received the request and answered with this error; its `retryable` is the
    #: plugin's word on whether to repeat the call.
    YES = "yes"
    #: The error does not end a call (configuration, start-up, health checks, ...).
    NOT_APPLICABLE = "n/a"
