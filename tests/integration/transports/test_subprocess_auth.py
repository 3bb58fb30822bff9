"""Authentication over the subprocess transport, driven by `PluginConfig.auth` on the host and
`serve(auth=AuthConfig)` in the plugin: the credentials travel in the handshake."""

from __future__ import annotations

import msgspec
import pytest

import plugwire
from plugwire import AuthConfig, AuthMethod
from plugwire.errors import ErrorCode
from tests.support.procguard import manager_for, no_leaks, python_plugin

__all__ = ["no_leaks"]

SECRETS = {"PLUGIN_API_KEY": "key-123", "PLUGIN_TOKEN": "tok-456", "PLUGIN_PASSWORD": "pw-789"}

RIGHT = {
    AuthMethod.API_KEY: AuthConfig(method=AuthMethod.API_KEY, api_key="key-123"),
    AuthMethod.BEARER: AuthConfig(method=AuthMethod.BEARER, token="tok-456"),
    AuthMethod.BASIC: AuthConfig(method=AuthMethod.BASIC, username="ops", password="pw-789"),
}
WRONG = {
    AuthMethod.API_KEY: AuthConfig(method=AuthMethod.API_KEY, api_key="key-000"),
    AuthMethod.BEARER: AuthConfig(method=AuthMethod.BEARER, token="tok-000"),
    AuthMethod.BASIC: AuthConfig(method=AuthMethod.BASIC, username="ops", password="pw-000"),
}


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""


class Resp(msgspec.Struct):
    text: str
    pid: int = 0


def config(name: str, auth: AuthConfig) -> plugwire.PluginConfig:
    return plugwire.PluginConfig(name=name, auth=auth, connection=plugwire.ConnectionConfig(max_connections=1))


@pytest.mark.parametrize("method", list(RIGHT))
async def test_config_credentials_are_accepted_refused_or_missing(method: AuthMethod, no_leaks: None) -> None:
    source = python_plugin("auth_config_plugin.py", method.value, **SECRETS)
    async with manager_for(Req, Resp) as manager:
        await manager.register(source, config=config("ok", RIGHT[method]))
        assert (await manager.execute("ok", Req(text="in"))).text == "in"
        with pytest.raises(plugwire.errors.AuthenticationError) as wrong:
            await manager.register(source, config=config("wrong", WRONG[method]))
        assert wrong.value.code == ErrorCode.AUTH_INVALID_CREDENTIALS
        for secret in ("key-000", "tok-000", "pw-000", *SECRETS.values()):
            assert secret not in str(wrong.value)
        with pytest.raises(plugwire.errors.AuthenticationError) as missing:
            await manager.register(source, config=config("none", AuthConfig()))
        assert missing.value.code == ErrorCode.AUTH_MISSING_CREDENTIALS


async def test_host_secrets_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, no_leaks: None) -> None:
    monkeypatch.setenv("HOST_SIDE_TOKEN", "tok-456")
    source = python_plugin("auth_config_plugin.py", "bearer", **SECRETS)
    auth = AuthConfig(method=AuthMethod.BEARER, token_env="HOST_SIDE_TOKEN")
    async with manager_for(Req, Resp) as manager:
        await manager.register(source, config=config("env", auth))
        assert (await manager.execute("env", Req(text="ok"))).text == "ok"
