"""Config and whitelist files that parsers choke on give coded errors, never a bare exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugwire import ConfigError, ManagerConfig
from plugwire._config import MAX_FILE_BYTES, MAX_NESTING, parse_duration
from plugwire._security import load_whitelist
from plugwire.errors import ConfigFileError, SecurityError

DEEP = "[" * 1000 + "]" * 1000

# (suffix, text, code): what the fuzzer found leaking ValueError, KeyError, AttributeError,
# RecursionError or OverflowError out of the loaders.
BAD_CONFIGS = [
    (".yaml", "shutdown_timeout: !!int x\n", 1702),
    (".yaml", "shutdown_timeout: !!bool maybe\n", 1702),
    (".yaml", "shutdown_timeout: !!timestamp x\n", 1702),
    (".yaml", "shutdown_timeout: !!float abc\n", 1702),
    (".yaml", "shutdown_timeout: 2001-13-45\n", 1702),
    (".yaml", "shutdown_timeout: " + "9" * 5000 + "\n", 1702),
    (".yaml", f"shutdown_timeout: {DEEP}\n", 1704),
    (".json", '{"shutdown_timeout": ' + "[" * 100_000 + "]" * 100_000 + "}", 1704),
    (".toml", f"shutdown_timeout = {DEEP}\n", 1704),
    (".yaml", "shutdown_timeout: " + "9" * 400 + "\n", 1003),
    (".json", '{"shutdown_timeout": 1' + "0" * 400 + "}", 1003),
    (".yaml", "log_level: !!binary aGVsbG8=\n", 1002),
]


@pytest.mark.parametrize(("suffix", "text", "code"), BAD_CONFIGS)
def test_a_config_file_that_breaks_its_parser_gives_a_coded_error(
    tmp_path: Path, suffix: str, text: str, code: int
) -> None:
    path = tmp_path / f"app{suffix}"
    path.write_text(text)
    with pytest.raises((ConfigError, ConfigFileError)) as caught:
        ManagerConfig.load(path)
    assert caught.value.code == code, caught.value.message
    assert str(path) in caught.value.message


def test_nesting_past_the_bound_is_refused_even_below_the_parsers_own_limit(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text('{"plugins": ' + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1) + "}")
    with pytest.raises(ConfigFileError) as caught:
        ManagerConfig.load(path)
    assert caught.value.code == 1704
    assert "nested more than" in caught.value.message


def test_a_huge_integer_duration_is_a_value_error_not_an_overflow() -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_duration(10**400)


WHITELIST_ENTRY = "plugins:\n  - name: a\n    path: plugins/a\n    hash: sha256:" + "c" * 64 + "\n"


@pytest.mark.parametrize(
    "text",
    [
        WHITELIST_ENTRY + "    metadata: {released: 2024-02-30}\n",
        WHITELIST_ENTRY + "    metadata: {released: 2001-13-45}\n",
        WHITELIST_ENTRY + "    enabled: !!bool maybe\n",
        WHITELIST_ENTRY + "    metadata: {n: !!int x}\n",
        WHITELIST_ENTRY + "    metadata: {t: !!timestamp x}\n",
        f"plugins: {DEEP}\n",
        "version: " + "9" * 5000 + "\n",
    ],
)
def test_a_whitelist_that_breaks_its_parser_gives_1804(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plugins.whitelist"
    path.write_text(text)
    with pytest.raises(SecurityError) as caught:
        load_whitelist(path)
    assert caught.value.code == 1804, caught.value.message


def test_a_file_over_the_size_bound_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(SecurityError) as caught:
        load_whitelist(path)
    assert caught.value.code == 1804
    assert "larger than 4 MiB" in caught.value.message
