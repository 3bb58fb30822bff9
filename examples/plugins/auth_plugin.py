"""The README's authentication plugin, in Python: validates a user's token.

Run it from a host (it is not meant to be started by hand):

    manager = plugwire.development(AuthRequest, AuthResponse).with_plugin(
        "auth", plugwire.subprocess(sys.executable, "examples/plugins/auth_plugin.py")
    ).build()
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3

import msgspec

import plugwire


class AuthRequest(msgspec.Struct):
    user_id: str
    token: str


class AuthResponse(msgspec.Struct, omit_defaults=True):
    valid: bool
    user_id: str = ""
    error: str = ""


class Database:
    """A tiny user store (SQLite in memory): users and the SHA-256 of their tokens."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        self.conn.execute("CREATE TABLE users (user_id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL)")
        for user, token in (("user123", "jwt-token-here"), ("alice", "s3cret-alice")):
            self.conn.execute("INSERT INTO users VALUES (?, ?)", (user, hashlib.sha256(token.encode()).hexdigest()))

    def validate_user(self, user_id: str, token: str) -> bool:
        row = self.conn.execute("SELECT token_sha256 FROM users WHERE user_id = ?", (user_id,)).fetchone()
        given = hashlib.sha256(token.encode()).hexdigest()
        return row is not None and hmac.compare_digest(row[0], given)

    def ping(self) -> None:
        self.conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self.conn.close()


class AuthPlugin(plugwire.Plugin[AuthRequest, AuthResponse]):
    def __init__(self, name: str = "auth-service") -> None:
        self.name = name
        self.db = Database()
        self.log = logging.getLogger("auth")

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(
            name=self.name,
            version="1.0.0",
            description="Authentication service plugin",
            author="security-team@company.com",
            capabilities=("authenticate", "authorize"),
            metadata={"database": "sqlite", "cache": "none"},
        )

    async def execute(self, ctx: plugwire.ExecutionContext, request: AuthRequest) -> AuthResponse:
        if not request.user_id or not request.token:
            return AuthResponse(valid=False, error="user_id and token are required")
        valid = self.db.validate_user(request.user_id, request.token)
        self.log.info("request %s: user %s valid=%s", ctx.request_id, request.user_id, valid)
        if not valid:
            return AuthResponse(valid=False, error="invalid credentials")
        return AuthResponse(valid=True, user_id=request.user_id)

    async def health(self) -> plugwire.HealthStatus:
        try:
            self.db.ping()
        except sqlite3.Error as exc:
            return plugwire.HealthStatus(status=plugwire.Status.UNHEALTHY, message=f"Database connection failed: {exc}")
        return plugwire.HealthStatus(status=plugwire.Status.HEALTHY, message="All systems operational")

    async def close(self) -> None:
        self.db.close()
        self.log.info("database closed")


if __name__ == "__main__":
    plugwire.serve(AuthPlugin())
