"""Credentials: providers and verifiers on their own, then end to end over gRPC."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from pathlib import Path

import pytest

import plugwire
from plugwire import AsyncPluginManager, AuthConfig, AuthMethod
from plugwire._auth import credential_provider, credential_verifier
from plugwire.errors import ErrorCode
from tests.support.grpc_support import Answer, Ask, ServeFactory

Manager = AsyncPluginManager[Ask, Answer]

API_KEY = AuthConfig(method=AuthMethod.API_KEY, api_key="key-0123456789")
BEARER = AuthConfig(method=AuthMethod.BEARER, token="tok-abcdef")
BASIC = AuthConfig(method=AuthMethod.BASIC, username="Aladdin", password="open sesame")


def test_providers_build_the_standard_headers() -> None:
    assert credential_provider(API_KEY)() == {"x-api-key": "key-0123456789"}  # type: ignore[misc]
    assert credential_provider(BEARER)() == {"authorization": "Bearer tok-abcdef"}  # type: ignore[misc]
    # The example of RFC 7617 section 2.
    assert credential_provider(BASIC)() == {"authorization": "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="}  # type: ignore[misc]
    assert credential_provider(AuthConfig()) is None
    assert credential_provider(AuthConfig(method=AuthMethod.MTLS)) is None


def test_secrets_are_read_from_files_and_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "api.key"
    key_file.write_text("from-a-file\n")
    monkeypatch.setenv("PLUGIN_TOKEN", "from-the-env")
    from_file = credential_provider(AuthConfig(method=AuthMethod.API_KEY, api_key_file=str(key_file)))
    from_env = credential_provider(AuthConfig(method=AuthMethod.BEARER, token_env="PLUGIN_TOKEN"))
    assert from_file is not None
    assert from_env is not None
    assert from_file() == {"x-api-key": "from-a-file"}
    assert from_env() == {"authorization": "Bearer from-the-env"}
    verifier = credential_verifier(AuthConfig(method=AuthMethod.BASIC, username="u", password_env="PLUGIN_TOKEN"))
    assert verifier is not None
    verifier({"authorization": "Basic " + base64.b64encode(b"u:from-the-env").decode()})


def test_bad_secret_sources_are_config_errors_that_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(plugwire.ConfigError, match="NOT_SET_ANYWHERE"):
        credential_provider(AuthConfig(method=AuthMethod.BEARER, token_env="NOT_SET_ANYWHERE"))
    with pytest.raises(plugwire.ConfigError, match=r"missing\.key"):
        credential_provider(AuthConfig(method=AuthMethod.API_KEY, api_key_file=str(tmp_path / "missing.key")))
    with pytest.raises(plugwire.ConfigError, match="only one"):
        credential_provider(AuthConfig(method=AuthMethod.API_KEY, api_key="a", api_key_env="B"))
    with pytest.raises(plugwire.ConfigError, match="needs api_key"):
        credential_verifier(AuthConfig(method=AuthMethod.API_KEY))
    with pytest.raises(plugwire.ConfigError, match="CredentialProvider"):
        credential_provider(AuthConfig(method=AuthMethod.CUSTOM))
    with pytest.raises(plugwire.ConfigError, match="CredentialVerifier"):
        credential_verifier(AuthConfig(method=AuthMethod.CUSTOM))


def _basic(raw: bytes) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize(
    ("config", "metadata", "code"),
    [
        (API_KEY, {}, ErrorCode.AUTH_MISSING_CREDENTIALS),
        (API_KEY, {"x-api-key": "key 0123456789\n"}, ErrorCode.AUTH_MALFORMED_CREDENTIALS),
        (API_KEY, {"x-api-key": "key-9999999999"}, ErrorCode.AUTH_INVALID_CREDENTIALS),
        (BEARER, {}, ErrorCode.AUTH_MISSING_CREDENTIALS),
        (BEARER, {"authorization": "Token tok-abcdef"}, ErrorCode.AUTH_MALFORMED_CREDENTIALS),
        (BEARER, {"authorization": "Bearer "}, ErrorCode.AUTH_MALFORMED_CREDENTIALS),
        (BEARER, {"authorization": "Bearer tok-wrong"}, ErrorCode.AUTH_INVALID_CREDENTIALS),
        (BASIC, {}, ErrorCode.AUTH_MISSING_CREDENTIALS),
        (BASIC, {"authorization": "Basic !!!not-base64"}, ErrorCode.AUTH_MALFORMED_CREDENTIALS),
        (BASIC, _basic(b"no-colon-here"), ErrorCode.AUTH_MALFORMED_CREDENTIALS),
        (BASIC, _basic(b"Aladdin:close sesame"), ErrorCode.AUTH_INVALID_CREDENTIALS),
        (BASIC, _basic(b"Ali:open sesame"), ErrorCode.AUTH_INVALID_CREDENTIALS),
    ],
)
def test_verifiers_refuse_missing_malformed_and_wrong_credentials(
    config: AuthConfig, metadata: dict[str, str], code: int
) -> None:
    verifier = credential_verifier(config)
    assert verifier is not None
    with pytest.raises(plugwire.errors.AuthenticationError) as caught:
        verifier(metadata)
    assert caught.value.code == code
    for secret in ("key-0123456789", "tok-abcdef", "open sesame"):
        assert secret not in str(caught.value)


def test_verifiers_accept_the_right_credentials_whatever_the_header_case() -> None:
    for config in (API_KEY, BEARER, BASIC):
        provider, verifier = credential_provider(config), credential_verifier(config)
        assert provider is not None
        assert verifier is not None
        verifier(provider())
        verifier({key.title(): value for key, value in provider().items()})


def test_secrets_never_appear_in_reprs() -> None:
    config = AuthConfig(method=AuthMethod.BASIC, username="u", password="hunter2")
    assert "hunter2" not in repr(config)
    provider, verifier = credential_provider(config), credential_verifier(config)
    assert "hunter2" not in repr(provider)
    assert "hunter2" not in repr(verifier)
    assert "aHVudGVyMg" not in repr(provider)  # nor its base64


@pytest.mark.parametrize("config", [API_KEY, BEARER, BASIC], ids=["api-key", "bearer", "basic"])
async def test_each_method_authenticates_over_grpc(serve: ServeFactory, manager: Manager, config: AuthConfig) -> None:
    server = await serve(auth=config)
    await manager.register(plugwire.grpc(server.address, auth=config), name="p")
    assert (await manager.execute("p", Ask(text="in"))).text == "in"
    assert (await manager.health())["p"].status is plugwire.Status.HEALTHY


WRONG = {
    "api-key": AuthConfig(method=AuthMethod.API_KEY, api_key="key-wrong"),
    "bearer": AuthConfig(method=AuthMethod.BEARER, token="tok-wrong"),
    "basic": AuthConfig(method=AuthMethod.BASIC, username="Aladdin", password="wrong"),
}


@pytest.mark.parametrize("config", [API_KEY, BEARER, BASIC], ids=["api-key", "bearer", "basic"])
async def test_wrong_and_missing_credentials_are_refused_over_grpc_with_their_code(
    serve: ServeFactory, manager: Manager, config: AuthConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await serve(auth=config)
    with pytest.raises(plugwire.errors.AuthenticationError) as wrong:
        await manager.register(plugwire.grpc(server.address, auth=WRONG[config.method.value]), name="wrong")
    with pytest.raises(plugwire.errors.AuthenticationError) as missing:
        await manager.register(plugwire.grpc(server.address), name="missing")
    assert wrong.value.code == ErrorCode.AUTH_INVALID_CREDENTIALS
    assert missing.value.code == ErrorCode.AUTH_MISSING_CREDENTIALS
    assert not wrong.value.retryable
    for secret in ("key-wrong", "tok-wrong", "key-0123456789", "tok-abcdef", "open sesame"):
        assert secret not in str(wrong.value)
        assert secret not in caplog.text


@pytest.mark.parametrize(
    ("config", "sent"),
    [
        (API_KEY, {"x-api-key": "key 0123456789"}),
        (BEARER, {"authorization": "Basic dG9rLWFiY2RlZg=="}),
        (BASIC, {"authorization": "Basic %%%"}),
    ],
    ids=["api-key", "bearer", "basic"],
)
async def test_malformed_credentials_are_refused_over_grpc(
    serve: ServeFactory, manager: Manager, config: AuthConfig, sent: dict[str, str]
) -> None:
    server = await serve(auth=config)
    with pytest.raises(plugwire.errors.AuthenticationError) as caught:
        await manager.register(plugwire.grpc(server.address, auth=lambda: sent), name="bad")
    assert caught.value.code == ErrorCode.AUTH_MALFORMED_CREDENTIALS


class SignedHeader:
    """A custom scheme: the host sends a signature header the plugin recomputes."""

    def __init__(self, signature: str) -> None:
        self.signature = signature

    def __call__(self) -> Mapping[str, str]:
        return {"x-signature": self.signature}


class SignatureCheck:
    def __call__(self, metadata: Mapping[str, str]) -> None:
        sent = metadata.get("x-signature")
        if sent is None:
            raise plugwire.errors.AuthenticationError("no signature", code=ErrorCode.AUTH_MISSING_CREDENTIALS)
        if sent != "sig-ok":
            raise ValueError("bad signature sig-ok expected")  # a careless verifier leaking its secret


async def test_custom_providers_and_verifiers_plug_in_as_protocols(serve: ServeFactory, manager: Manager) -> None:
    assert isinstance(SignedHeader("x"), plugwire.security.CredentialProvider)
    assert isinstance(SignatureCheck(), plugwire.security.CredentialVerifier)
    server = await serve(auth=SignatureCheck())
    await manager.register(plugwire.grpc(server.address, auth=SignedHeader("sig-ok")), name="good")
    assert (await manager.execute("good", Ask(text="signed"))).text == "signed"

    with pytest.raises(plugwire.errors.AuthenticationError) as wrong:
        await manager.register(plugwire.grpc(server.address, auth=SignedHeader("sig-bad")), name="bad")
    assert wrong.value.code == ErrorCode.AUTH_FAILED
    assert "sig-ok" not in str(wrong.value)
    with pytest.raises(plugwire.errors.AuthenticationError) as missing:
        await manager.register(plugwire.grpc(server.address), name="none")
    assert missing.value.code == ErrorCode.AUTH_MISSING_CREDENTIALS


async def test_a_failing_credential_provider_is_an_authentication_error(serve: ServeFactory, manager: Manager) -> None:
    def broken() -> Mapping[str, str]:
        raise OSError("vault unreachable, token=abc")

    server = await serve()
    with pytest.raises(plugwire.errors.AuthenticationError) as caught:
        await manager.register(plugwire.grpc(server.address, auth=broken), name="p")
    assert "token=abc" not in str(caught.value)


async def test_metadata_grpc_cannot_carry_is_refused_before_sending(serve: ServeFactory, manager: Manager) -> None:
    server = await serve()
    with pytest.raises(plugwire.errors.AuthenticationError) as bad_value:
        await manager.register(plugwire.grpc(server.address, auth=lambda: {"x-api-key": "s3cr\tet"}), name="a")
    with pytest.raises(plugwire.errors.AuthenticationError) as bad_key:
        await manager.register(plugwire.grpc(server.address, auth=lambda: {"X Key": "v"}), name="b")
    assert bad_value.value.code == ErrorCode.AUTH_MALFORMED_CREDENTIALS
    assert "s3cr" not in str(bad_value.value)
    assert bad_key.value.code == ErrorCode.AUTH_MALFORMED_CREDENTIALS


async def test_a_config_file_plugin_reads_its_api_key_from_the_environment(
    serve: ServeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKUP_AUTH_KEY", "env-key-42")
    server = await serve(auth=AuthConfig(method=AuthMethod.API_KEY, api_key_env="BACKUP_AUTH_KEY"))
    config = plugwire.ManagerConfig.from_dict(
        {
            "plugins": [
                {
                    "name": "backup-auth",
                    "transport": "grpc",
                    "endpoint": server.address,
                    "auth": {"method": "api-key", "api_key_env": "BACKUP_AUTH_KEY"},
                }
            ]
        }
    )
    assert "env-key-42" not in repr(config)
    async with AsyncPluginManager(Ask, Answer, config=config) as mgr:
        assert (await mgr.execute("backup-auth", Ask(text="configured"))).text == "configured"


def test_a_refused_authorization_header_is_never_echoed() -> None:
    from plugwire._auth import credential_verifier

    verifier = credential_verifier(plugwire.AuthConfig(method=plugwire.AuthMethod.BEARER, token="right"))
    assert verifier is not None
    with pytest.raises(plugwire.errors.AuthenticationError) as caught:
        verifier({"authorization": "sk_live_51HqLyjWDarjtT1zdp7dc"})
    assert "sk_live" not in str(caught.value)
    assert caught.value.code == plugwire.errors.ErrorCode.AUTH_MALFORMED_CREDENTIALS


def test_secrets_from_files_and_environment_are_known_for_redaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugwire._auth import configured_secrets

    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    monkeypatch.setenv("TOKEN_VAR", "from-env")
    auth = plugwire.AuthConfig(api_key_file=str(key_file), token_env="TOKEN_VAR", password="inline")
    assert sorted(configured_secrets(auth)) == ["from-env", "from-file", "inline"]
    assert configured_secrets(plugwire.AuthConfig(token_env="UNSET_VARIABLE_FOR_TEST")) == []
