"""plugwire's demo: register plugins, make typed calls, see bad input refused, print health.

Run it with `make demo`.
"""

from __future__ import annotations

import asyncio
import dataclasses

import plugwire
from plugwire import ExecutionContext, HealthStatus, Plugin, PluginInfo, Status


@dataclasses.dataclass
class AuthRequest:
    user_id: str
    token: str


@dataclasses.dataclass
class AuthResponse:
    valid: bool
    user_id: str = ""
    error: str = ""


class TokenAuth(Plugin[AuthRequest, AuthResponse]):
    """Accepts a fixed set of tokens: the README's auth plugin, in-process."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def info(self) -> PluginInfo:
        return PluginInfo(name="auth", version="1.0.0", description="token check", capabilities=("authenticate",))

    async def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
        if self.tokens.get(request.user_id) == request.token:
            return AuthResponse(valid=True, user_id=request.user_id)
        return AuthResponse(valid=False, error="unknown token")


class SloppyAuth(Plugin[AuthRequest, AuthResponse]):
    """A buggy plugin: it answers with the wrong shape, which plugwire refuses."""

    def info(self) -> PluginInfo:
        return PluginInfo(name="sloppy", version="0.1.0")

    async def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
        return {"valid": "probably"}  # type: ignore[return-value]

    async def health(self) -> HealthStatus:
        return HealthStatus(status=Status.DEGRADED, message="answers are unreliable")


def show(title: str, value: object) -> None:
    print(f"  {title:<34} {value}")


async def main() -> None:
    manager = (
        plugwire.development(AuthRequest, AuthResponse)
        .with_plugin("auth", TokenAuth({"user123": "jwt-token-here"}))
        .with_plugin("sloppy", SloppyAuth())
        .with_timeout(5)
        .build()
    )
    async with manager:
        print("typed calls")
        show("auth(user123, right token) ->", await manager.execute("auth", AuthRequest("user123", "jwt-token-here")))
        show("auth(user123, wrong token) ->", await manager.execute("auth", AuthRequest("user123", "nope")))

        print("refused with coded errors")
        bad_request = AuthRequest(user_id=123, token="jwt-token-here")  # type: ignore[arg-type]
        for title, name, request in [
            ("bad request (user_id is an int)", "auth", bad_request),
            ("bad response (valid is a str)", "sloppy", AuthRequest("user123", "x")),
            ("unknown plugin", "billing", AuthRequest("user123", "x")),
        ]:
            try:
                await manager.execute(name, request)
            except plugwire.PluginError as exc:
                show(title, f"{type(exc).__name__} {exc}")
            else:
                raise SystemExit(f"demo: {title} was not refused")

        print("health")
        for name, status in (await manager.health()).items():
            show(name, f"{status.status.value}: {status.message} ({status.response_time * 1e6:.0f} us)")


if __name__ == "__main__":
    asyncio.run(main())
