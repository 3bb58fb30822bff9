"""The README's `backup-auth` plugin, served over gRPC.

Run it:

    python examples/plugins/backup_auth_grpc.py                      # localhost:9090
    python examples/plugins/backup_auth_grpc.py --address unix:/tmp/backup-auth.sock
    BACKUP_AUTH_KEY=s3cret python examples/plugins/backup_auth_grpc.py --api-key-env BACKUP_AUTH_KEY

and call it from a host:

    manager = (
        plugwire.development(AuthRequest, AuthResponse)
        .with_plugin("backup-auth", plugwire.grpc("localhost:9090"))
        .build()
    )
    response = await manager.execute("backup-auth", AuthRequest(user_id="alice", token="tok-alice"))

SIGTERM or Ctrl-C stops it gracefully: calls in flight finish, then `close()` runs.
"""

from __future__ import annotations

import argparse
import hmac

import msgspec

import plugwire


class AuthRequest(msgspec.Struct, kw_only=True):
    """The README's `AuthRequest`."""

    user_id: str
    token: str


class AuthResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The README's `AuthResponse`."""

    valid: bool
    user_id: str = ""
    error: str = ""


class BackupAuthPlugin(plugwire.Plugin[AuthRequest, AuthResponse]):
    """Validates user tokens against an in-memory table (a stand-in for the README's database)."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = tokens
        self._open = True

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(
            name="backup-auth",
            version="1.0.0",
            description="Authentication service plugin (backup, over gRPC)",
            author="security-team@company.com",
            capabilities=("authenticate", "authorize"),
            metadata={"database": "in-memory"},
        )

    async def execute(self, ctx: plugwire.ExecutionContext, request: AuthRequest) -> AuthResponse:
        expected = self._tokens.get(request.user_id)
        if expected is None:
            return AuthResponse(valid=False, error="unknown user")
        valid = hmac.compare_digest(expected.encode(), request.token.encode())
        return AuthResponse(valid=valid, user_id=request.user_id if valid else "")

    async def health(self) -> plugwire.HealthStatus:
        if not self._open:
            return plugwire.HealthStatus(status=plugwire.Status.UNHEALTHY, message="user table closed")
        return plugwire.HealthStatus(status=plugwire.Status.HEALTHY, message="All systems operational")

    async def close(self) -> None:
        self._open = False


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the backup-auth plugin over gRPC.")
    parser.add_argument("--address", default="localhost:9090", help="host:port or unix:/path (default %(default)s)")
    parser.add_argument("--api-key-env", default="", help="require this environment variable's value as x-api-key")
    parser.add_argument("--cert-file", default="", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--key-file", default="", help="the certificate's private key (PEM)")
    parser.add_argument("--client-ca-file", default="", help="demand client certificates signed by this CA (mTLS)")
    options = parser.parse_args()

    auth = None
    if options.api_key_env:
        auth = plugwire.AuthConfig(method=plugwire.AuthMethod.API_KEY, api_key_env=options.api_key_env)
    tls = None
    if options.cert_file:
        tls = plugwire.security.ServerTLSConfig(
            cert_file=options.cert_file,
            key_file=options.key_file,
            client_ca_file=options.client_ca_file,
            require_client_cert=bool(options.client_ca_file),
        )
    plugin = BackupAuthPlugin({"alice": "tok-alice", "bob": "tok-bob"})
    plugwire.sdk.serve_grpc(plugin, address=options.address, tls=tls, auth=auth)


if __name__ == "__main__":
    main()
