"""A plugin folder's `plugin.yaml`: the schema, and coded errors that name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugwire._discovery import read_manifest
from plugwire._models import Transport
from plugwire.config import PluginManifest
from plugwire.errors import ConfigError, ConfigFileError, ErrorCode, SecurityError
from tests.support.discovered import write_manifest

HASH = "ab" * 32


def manifest(tmp_path: Path, text: str) -> Path:
    return write_manifest(tmp_path / "echo", text)


def test_a_full_manifest_is_read_with_every_field(tmp_path: Path) -> None:
    file = manifest(
        tmp_path,
        f"""
name: echo
version: 1.2.3
description: says it back
command: bin/echo
args: [--fast, data/table.csv]
env: ["MODE=fast", "LEVEL=2"]
transport: executable
hash: "sha256:{HASH.upper()}"
capabilities: [echo, shout]
""",
    )
    assert read_manifest(file) == PluginManifest(
        name="echo",
        version="1.2.3",
        description="says it back",
        command="bin/echo",
        args=("--fast", "data/table.csv"),
        env={"MODE": "fast", "LEVEL": "2"},
        transport=Transport.EXECUTABLE,
        hash=HASH,
        capabilities=("echo", "shout"),
    )


def test_a_grpc_manifest_needs_only_a_name_and_an_endpoint(tmp_path: Path) -> None:
    file = manifest(tmp_path, "name: pricing\ntransport: grpc\nendpoint: 127.0.0.1:9090\n")
    assert read_manifest(file).endpoint == "127.0.0.1:9090"


@pytest.mark.parametrize(
    ("text", "code", "field"),
    [
        ("command: run\n", ErrorCode.CONFIG_MISSING_FIELD, "name: required key is missing"),
        ("name: echo\n", ErrorCode.CONFIG_MISSING_EXECUTABLE, "command:"),
        ("name: echo\ntransport: grpc\n", ErrorCode.CONFIG_MISSING_ENDPOINT, "endpoint:"),
        (
            "name: echo\ncommand: run\nversoin: 1\n",
            ErrorCode.CONFIG_UNKNOWN_KEY,
            "versoin: unknown key; did you mean 'version'?",
        ),
        ("name: echo\ncommand: run\nversion: [1]\n", ErrorCode.CONFIG_WRONG_TYPE, "version: expected str"),
        ("name: echo\ncommand: run\nargs: --fast\n", ErrorCode.CONFIG_WRONG_TYPE, "args: expected array"),
        ("name: ../echo\ncommand: run\n", ErrorCode.CONFIG_INVALID_NAME, "name: a plugin name is"),
        ("name: echo\ncommand: run\ntransport: carrier-pigeon\n", ErrorCode.CONFIG_UNKNOWN_TRANSPORT, "transport:"),
        ("name: echo\ncommand: run\ntransport: in-process\n", ErrorCode.CONFIG_UNKNOWN_TRANSPORT, "transport:"),
        ("name: echo\ncommand: /usr/bin/env\n", ErrorCode.CONFIG_INVALID_VALUE, "command: must be a path relative"),
        ("name: echo\ntransport: grpc\nendpoint: h:1\ncommand: x\n", ErrorCode.CONFIG_INVALID_VALUE, "command:"),
        (
            "name: echo\ncommand: run\nenv: [NOEQUALS]\n",
            ErrorCode.CONFIG_INVALID_VALUE,
            "env[0]: expected 'NAME=value'",
        ),
        ("- just\n- a list\n", ErrorCode.CONFIG_WRONG_TYPE, "expected a mapping"),
    ],
)
def test_a_bad_manifest_is_a_coded_error_naming_the_file_and_the_field(
    tmp_path: Path, text: str, code: ErrorCode, field: str
) -> None:
    file = manifest(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_manifest(file)
    assert caught.value.code == code
    assert caught.value.message.startswith(f"{file}: ")
    assert field in caught.value.message


def test_an_empty_manifest_says_the_name_is_missing(tmp_path: Path) -> None:
    file = manifest(tmp_path, "")
    with pytest.raises(ConfigError, match="name: required key is missing") as caught:
        read_manifest(file)
    assert caught.value.code == ErrorCode.CONFIG_MISSING_FIELD


def test_a_command_leaving_the_folder_is_path_traversal(tmp_path: Path) -> None:
    file = manifest(tmp_path, "name: echo\ncommand: ../other/run\n")
    with pytest.raises(SecurityError, match="command:") as caught:
        read_manifest(file)
    assert caught.value.code == ErrorCode.PATH_TRAVERSAL


def test_a_hash_that_is_not_sha256_hex_is_refused(tmp_path: Path) -> None:
    file = manifest(tmp_path, "name: echo\ncommand: run\nhash: 'sha256:abc'\n")
    with pytest.raises(SecurityError, match=f"{file}: hash") as caught:
        read_manifest(file)
    assert caught.value.code == ErrorCode.BAD_HASH_LENGTH


def test_malformed_yaml_is_a_file_error_naming_the_file(tmp_path: Path) -> None:
    file = manifest(tmp_path, "name: [echo\n")
    with pytest.raises(ConfigFileError, match=str(file)) as caught:
        read_manifest(file)
    assert caught.value.code == ErrorCode.CONFIG_FILE_UNREADABLE
