"""Credentials on both transports: host-side providers and plugin-side verifiers.

The host turns an `AuthConfig` into a *provider*: a callable returning the metadata map to
send (gRPC metadata, or the subprocess handshake's `auth` field). The plugin turns its own
`AuthConfig` into a *verifier*: a callable that takes the received map and raises a coded
`AuthenticationError` unless the credentials match. Secrets are compared in constant time
and never appear in messages, logs or `repr()`.

| method    | metadata sent                                      |
|-----------|----------------------------------------------------|
| `api-key` | `x-api-key: <key>`                                 |
| `bearer`  | `authorization: Bearer <token>`                    |
| `basic`   | `authorization: Basic base64(user:password)` (RFC 7617) |
| `mtls`    | nothing: the client certificate proves the host    |
| `custom`  | whatever the user's `CredentialProvider` returns   |
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from ._config import AuthConfig
from ._errors import AuthenticationError, ConfigError, ErrorCode
from ._models import AuthMethod

__all__ = [
    "API_KEY_HEADER",
    "AUTHORIZATION_HEADER",
    "CredentialProvider",
    "CredentialVerifier",
    "StaticCredentials",
    "configured_secrets",
    "credential_provider",
    "credential_verifier",
    "resolve_secret",
]

API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"


@runtime_checkable
class CredentialProvider(Protocol):
    """Host side of `custom` auth: returns the metadata to send with each call.

    Called once per call (and once per subprocess handshake), so it may refresh tokens.
    Keys must be lower-case ASCII; values ASCII.
    """

    def __call__(self) -> Mapping[str, str]: ...


@runtime_checkable
class CredentialVerifier(Protocol):
    """Plugin side of `custom` auth: checks the received metadata.

    Returns normally to accept; raises `AuthenticationError` (1100-1199) to refuse. Any other
    exception is treated as a refusal with code 1100.
    """

    def __call__(self, metadata: Mapping[str, str]) -> None: ...


def configured_secrets(auth: AuthConfig) -> list[str]:
    """Every secret `auth` names (inline, from files, from environment variables), for redaction.

    A source that cannot be read is skipped: using it fails elsewhere, with a coded error.
    """
    found = []
    for what in ("api_key", "token", "password"):
        try:
            value = resolve_secret(
                what, getattr(auth, what), getattr(auth, f"{what}_file"), getattr(auth, f"{what}_env")
            )
        except ConfigError:
            continue
        if value:
            found.append(value)
    return found


def resolve_secret(what: str, inline: str, file: str, env: str) -> str:
    """The secret from exactly one of: inline value, file, environment variable.

    A file's trailing newline is dropped (as `echo key > file` writes one).

    Raises:
        ConfigError: More than one source is set, the file cannot be read, or the variable
            is not set (1003). The message names the file or variable, never the secret.
    """
    given = [name for name, value in (("inline", inline), ("file", file), ("env", env)) if value]
    if len(given) > 1:
        raise ConfigError(
            f"auth.{what}: set only one of {what}, {what}_file and {what}_env", code=ErrorCode.CONFIG_INVALID_VALUE
        )
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"auth.{what}_file: cannot read {file!r} ({type(exc).__name__})", code=ErrorCode.CONFIG_INVALID_VALUE
            ) from None
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(
                f"auth.{what}_env: environment variable {env!r} is not set", code=ErrorCode.CONFIG_INVALID_VALUE
            )
        return value
    return inline


def _required(what: str, value: str, method: AuthMethod) -> str:
    if not value:
        raise ConfigError(
            f"auth.{what}: the {method.value!r} auth method needs {what} (inline, {what}_file or {what}_env)",
            code=ErrorCode.CONFIG_MISSING_FIELD,
        )
    return value


class StaticCredentials:
    """A provider that sends the same metadata with every call; its `repr()` hides values."""

    __slots__ = ("_metadata",)

    def __init__(self, metadata: Mapping[str, str]) -> None:
        self._metadata = dict(metadata)

    def __call__(self) -> Mapping[str, str]:
        return self._metadata

    def __repr__(self) -> str:
        return f"StaticCredentials(keys={sorted(self._metadata)})"


def credential_provider(auth: AuthConfig | CredentialProvider | None) -> CredentialProvider | None:
    """The host-side provider for `auth`; None when nothing travels in metadata.

    Raises:
        ConfigError: A required secret is missing or unreadable, or `custom` was configured
            without a `CredentialProvider` object.
    """
    if auth is None:
        return None
    if not isinstance(auth, AuthConfig):
        if not callable(auth):
            raise TypeError(f"auth must be an AuthConfig or a CredentialProvider, got {type(auth).__name__}")
        return auth
    method = AuthMethod(auth.method)
    if method in (AuthMethod.NONE, AuthMethod.MTLS):
        return None
    if method is AuthMethod.API_KEY:
        key = _required("api_key", resolve_secret("api_key", auth.api_key, auth.api_key_file, auth.api_key_env), method)
        return StaticCredentials({API_KEY_HEADER: key})
    if method is AuthMethod.BEARER:
        token = _required("token", resolve_secret("token", auth.token, auth.token_file, auth.token_env), method)
        return StaticCredentials({AUTHORIZATION_HEADER: f"Bearer {token}"})
    if method is AuthMethod.BASIC:
        user = _required("username", auth.username, method)
        password = resolve_secret("password", auth.password, auth.password_file, auth.password_env)
        if ":" in user:
            raise ConfigError("auth.username: RFC 7617 forbids ':' in a user name", code=ErrorCode.CONFIG_INVALID_VALUE)
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return StaticCredentials({AUTHORIZATION_HEADER: f"Basic {encoded}"})
    raise ConfigError(
        "auth.method: 'custom' needs a CredentialProvider object; pass it as auth=... in code",
        code=ErrorCode.CONFIG_INVALID_VALUE,
    )


def credential_verifier(auth: AuthConfig | CredentialVerifier | None) -> CredentialVerifier | None:
    """The plugin-side verifier for `auth`; None when metadata is not checked (none, mtls).

    Raises:
        ConfigError: A required secret is missing or unreadable, or `custom` was configured
            without a `CredentialVerifier` object.
    """
    if auth is None:
        return None
    if not isinstance(auth, AuthConfig):
        if not callable(auth):
            raise TypeError(f"auth must be an AuthConfig or a CredentialVerifier, got {type(auth).__name__}")
        return _Guarded(auth)
    method = AuthMethod(auth.method)
    if method in (AuthMethod.NONE, AuthMethod.MTLS):
        return None
    if method is AuthMethod.API_KEY:
        key = _required("api_key", resolve_secret("api_key", auth.api_key, auth.api_key_file, auth.api_key_env), method)
        return _ApiKeyVerifier(key)
    if method is AuthMethod.BEARER:
        token = _required("token", resolve_secret("token", auth.token, auth.token_file, auth.token_env), method)
        return _BearerVerifier(token)
    if method is AuthMethod.BASIC:
        user = _required("username", auth.username, method)
        password = resolve_secret("password", auth.password, auth.password_file, auth.password_env)
        return _BasicVerifier(user, password)
    raise ConfigError(
        "auth.method: 'custom' needs a CredentialVerifier object; pass it as auth=... to serve()",
        code=ErrorCode.CONFIG_INVALID_VALUE,
    )


def _missing(what: str) -> AuthenticationError:
    return AuthenticationError(f"missing credentials: no {what} was sent", code=ErrorCode.AUTH_MISSING_CREDENTIALS)


def _malformed(why: str) -> AuthenticationError:
    return AuthenticationError(f"malformed credentials: {why}", code=ErrorCode.AUTH_MALFORMED_CREDENTIALS)


def _wrong(what: str) -> AuthenticationError:
    return AuthenticationError(f"invalid credentials: the {what} is wrong", code=ErrorCode.AUTH_INVALID_CREDENTIALS)


def _same(given: str, expected: bytes) -> bool:
    # hmac.compare_digest takes time independent of where the inputs differ.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected)


def _header(metadata: Mapping[str, str], name: str) -> str | None:
    value = metadata.get(name)
    if value is not None:
        return value
    for key, found in metadata.items():  # keys are lower-case on gRPC; be lenient elsewhere
        if key.lower() == name:
            return found
    return None


def _authorization(metadata: Mapping[str, str], scheme: str) -> str:
    header = _header(metadata, AUTHORIZATION_HEADER)
    if not header:
        raise _missing(f"'{AUTHORIZATION_HEADER}' header")
    sent_scheme, _, value = header.strip().partition(" ")
    if sent_scheme.lower() != scheme.lower():
        # Never echo what was sent: a token pasted without its scheme would land in logs.
        raise _malformed(f"expected the {scheme} scheme in '{AUTHORIZATION_HEADER}'")
    value = value.strip()
    if not value:
        raise _malformed(f"the {scheme} credentials are empty")
    return value


class _ApiKeyVerifier:
    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def __call__(self, metadata: Mapping[str, str]) -> None:
        sent = _header(metadata, API_KEY_HEADER)
        if not sent:
            raise _missing(f"'{API_KEY_HEADER}' header")
        if not sent.isprintable() or any(char.isspace() for char in sent):
            raise _malformed("the API key holds whitespace or control characters")
        if not _same(sent, self._key):
            raise _wrong("API key")

    def __repr__(self) -> str:
        return "ApiKeyVerifier(***)"


class _BearerVerifier:
    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def __call__(self, metadata: Mapping[str, str]) -> None:
        if not _same(_authorization(metadata, "Bearer"), self._token):
            raise _wrong("bearer token")

    def __repr__(self) -> str:
        return "BearerVerifier(***)"


class _BasicVerifier:
    __slots__ = ("_password", "_user")

    def __init__(self, user: str, password: str) -> None:
        self._user = user.encode()
        self._password = password.encode()

    def __call__(self, metadata: Mapping[str, str]) -> None:
        encoded = _authorization(metadata, "Basic")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _malformed("the Basic credentials are not base64 of UTF-8 'user:password'") from None
        user, colon, password = decoded.partition(":")
        if not colon:
            raise _malformed("the Basic credentials have no ':' between user and password")
        # Compare both parts every time, so timing does not tell which one was wrong.
        user_ok = _same(user, self._user)
        password_ok = _same(password, self._password)
        if not (user_ok and password_ok):
            raise _wrong("user name or password")

    def __repr__(self) -> str:
        return "BasicVerifier(***)"


class _Guarded:
    """Wraps a user verifier so that anything but an `AuthenticationError` still refuses (1100)."""

    __slots__ = ("_inner",)

    def __init__(self, inner: CredentialVerifier) -> None:
        self._inner = inner

    def __call__(self, metadata: Mapping[str, str]) -> None:
        try:
            self._inner(metadata)
        except AuthenticationError:
            raise
        except Exception as exc:
            raise AuthenticationError(
                f"the custom credential verifier refused the call ({type(exc).__name__})",
                code=ErrorCode.AUTH_FAILED,
            ) from None

    def __repr__(self) -> str:
        return f"CustomVerifier({type(self._inner).__name__})"
