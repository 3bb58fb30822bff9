"""TLS settings for both ends of a gRPC connection, and reading their PEM files.

The host side (`TLSConfig`) names the CA it trusts and, for mTLS, its own certificate;
the plugin side (`ServerTLSConfig`) names its certificate and, to demand client
certificates, the CA that signs them. Transport-specific credentials are built from these
by the gRPC transport and server; this module only validates and reads files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._config import AuthConfig
from ._errors import ConfigError, ErrorCode
from ._models import AuthMethod

__all__ = ["ServerTLSConfig", "TLSConfig", "read_pem", "tls_from_auth"]


def read_pem(path: str, what: str) -> bytes:
    """Read a PEM file named in config.

    Raises:
        ConfigError: The file cannot be read or holds no PEM block (1003); the message
            names the path, never the content.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"tls.{what}: cannot read {path!r} ({exc.strerror})", code=ErrorCode.CONFIG_INVALID_VALUE
        ) from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"tls.{what}: {path!r} is not a PEM file", code=ErrorCode.CONFIG_INVALID_VALUE)
    return data


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """How the host checks the plugin's certificate, and (mTLS) proves itself.

    Attributes:
        ca_file: PEM bundle of the CAs the host trusts; empty uses the system roots.
        cert_file: The host's client certificate (mTLS); needs `key_file`.
        key_file: The private key of `cert_file`.
        server_name: Expect this name in the plugin's certificate instead of the target's
            host. `unix:` targets expect `localhost` unless this is set.
    """

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError(
                "tls: cert_file and key_file go together (mutual TLS needs both)", code=ErrorCode.CONFIG_INVALID_VALUE
            )

    @property
    def mutual(self) -> bool:
        """Whether the host presents a client certificate."""
        return bool(self.cert_file)

    def load(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """(root CAs, client key, client certificate) as PEM bytes; None where not set."""
        roots = read_pem(self.ca_file, "ca_file") if self.ca_file else None
        key = read_pem(self.key_file, "key_file") if self.key_file else None
        cert = read_pem(self.cert_file, "cert_file") if self.cert_file else None
        return roots, key, cert


@dataclass(frozen=True, slots=True)
class ServerTLSConfig:
    """How a plugin serves TLS, and whether it demands client certificates.

    Attributes:
        cert_file: The plugin's certificate chain (PEM).
        key_file: Its private key (PEM).
        client_ca_file: CAs whose client certificates are accepted; required when
            `require_client_cert` is set.
        require_client_cert: Refuse hosts without a valid client certificate (mTLS).
    """

    cert_file: str
    key_file: str
    client_ca_file: str = ""
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        if not self.cert_file or not self.key_file:
            raise ConfigError("tls: a TLS server needs cert_file and key_file", code=ErrorCode.CONFIG_MISSING_FIELD)
        if self.require_client_cert and not self.client_ca_file:
            raise ConfigError(
                "tls.client_ca_file: demanding client certificates needs the CA that signs them",
                code=ErrorCode.CONFIG_MISSING_FIELD,
            )

    def load(self) -> tuple[bytes, bytes, bytes | None]:
        """(key, certificate chain, client CAs) as PEM bytes."""
        key = read_pem(self.key_file, "key_file")
        cert = read_pem(self.cert_file, "cert_file")
        roots = read_pem(self.client_ca_file, "client_ca_file") if self.client_ca_file else None
        return key, cert, roots


def tls_from_auth(auth: AuthConfig, *, server_name: str = "") -> TLSConfig:
    """The host's TLS settings for a `grpc-tls` plugin described in config.

    `ca_file` is always used; `cert_file`/`key_file` only with the `mtls` method, which
    requires them.

    Raises:
        ConfigError: `mtls` without `cert_file` and `key_file` (1004).
    """
    if AuthMethod(auth.method) is AuthMethod.MTLS:
        if not auth.cert_file or not auth.key_file:
            raise ConfigError(
                "auth: the 'mtls' method needs cert_file and key_file", code=ErrorCode.CONFIG_MISSING_FIELD
            )
        return TLSConfig(
            ca_file=auth.ca_file, cert_file=auth.cert_file, key_file=auth.key_file, server_name=server_name
        )
    return TLSConfig(ca_file=auth.ca_file, server_name=server_name)
