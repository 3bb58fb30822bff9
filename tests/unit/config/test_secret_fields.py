"""Every config field that may hold a credential is declared as one (or as where one is kept),
so `repr()` and `plugwire config show` never print it."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import msgspec

from plugwire._config import SECRET_NAME, ManagerConfig, secret_kind


def _struct_in(hint: Any) -> Any:
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return hint
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args and isinstance(args[0], type) and issubclass(args[0], msgspec.Struct):
        return args[0]
    return None


def _fields(struct: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every field of the config tree, as (dotted path, declared type)."""
    for name, hint in typing.get_type_hints(struct, include_extras=True).items():
        here = f"{path}.{name}" if path else name
        inner = _struct_in(hint)
        if inner is not None:
            yield from _fields(inner, here)
        else:
            yield here, hint


def _base(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


def test_every_credential_like_text_field_is_classified() -> None:
    unclassified = [
        path
        for path, hint in _fields(ManagerConfig)
        if SECRET_NAME.search(path.rpartition(".")[2])
        and (_base(hint) is str or typing.get_origin(_base(hint)) is dict)
        and secret_kind(hint) is None
    ]
    assert unclassified == [], (
        f"declare these Secret (a credential), SecretReference (where one is kept) or NotSecret: {unclassified}"
    )


def test_the_classification_names_the_auth_secrets_and_the_mappings_judged_by_name() -> None:
    kinds = {path: secret_kind(hint) for path, hint in _fields(ManagerConfig) if secret_kind(hint) is not None}
    assert {path for path, kind in kinds.items() if kind is True} == {
        "plugins.auth.api_key",
        "plugins.auth.token",
        "plugins.auth.password",
    }
    assert {path for path, kind in kinds.items() if kind == "by-name"} == {"plugins.env", "plugins.metadata"}


def test_a_new_credential_field_without_a_declaration_would_be_caught() -> None:
    class Leaky(msgspec.Struct, kw_only=True):
        client_secret: str = ""

    assert [path for path, hint in _fields(Leaky) if SECRET_NAME.search(path) and secret_kind(hint) is None] == [
        "client_secret"
    ]
