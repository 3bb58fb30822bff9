"""Small typed plugins shared by the tests (`tests.support.sample_plugins`)."""

from __future__ import annotations

import dataclasses

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


class AuthPlugin(Plugin[AuthRequest, AuthResponse]):
    """Accepts the token "good"; answers with a wrong shape for the token "wrong-shape"."""

    def __init__(self, name: str = "auth") -> None:
        self.name = name
        self.closed = 0
        self.calls = 0

    def info(self) -> PluginInfo:
        return PluginInfo(name=self.name, version="1.2.3", author="tests", capabilities=("authenticate",))

    async def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
        self.calls += 1
        if request.token == "wrong-shape":
            return {"valid": "certainly"}  # type: ignore[return-value]
        if request.token == "boom":
            raise RuntimeError("database unreachable")
        return AuthResponse(valid=request.token == "good", user_id=request.user_id)

    async def health(self) -> HealthStatus:
        return HealthStatus(status=Status.HEALTHY, message="db ok")

    async def close(self) -> None:
        self.closed += 1
