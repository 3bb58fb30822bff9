"""Fuzzed config and whitelist files: whatever the bytes, only coded errors come out.

Structured near-valid documents (wrong types, typos, tagged YAML scalars, bad dates, huge
numbers, deep nesting) and randomly mutated bytes of valid ones, in YAML, JSON and TOML.
Bounded: a few hundred files per property, well under a minute for the whole file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugwire import ConfigError, ManagerConfig, PluginError
from plugwire._security import load_whitelist
from plugwire.errors import ConfigFileError, SecurityError

pytestmark = pytest.mark.faults

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

TAGS = ["!!int", "!!bool", "!!timestamp", "!!float", "!!binary", "!!str", "!!null", "!!seq", "!!map", "!!set"]
UNSAFE_TAGS = ["!!python/object:os.system", "!!python/name:os.system", "!!python/object/apply:os.system", "!custom"]
TAG_VALUES = ["x", "maybe", "2001-13-45", "2024-02-30", "1e999", "-1", "0x1F", "aGVsbG8=", "", "9" * 40, "[a]"]
BAD_SCALARS = [
    "2001-13-45",
    "2024-02-30",
    "2024-02-30T25:61:61Z",
    "1" + "0" * 400,
    "-" + "9" * 30,
    "1e999",
    ".nan",
    "-.inf",
    "0o777",
    "0b102",
    "~",
    "&a x",
    "*a",
    "'unterminated",
]

# Keys valid somewhere in a config, plus near misses: the documents stay close to valid.
CONFIG_KEYS = [
    "plugins", "name", "executable", "transport", "args", "env", "work_dir", "endpoint", "enabled",
    "retry", "max_retries", "initial_interval", "max_interval", "multiplier", "circuit_breaker",
    "recovery_timeout", "health_check", "interval", "timeout", "connection", "request_timeout",
    "rate_limit", "requests_per_second", "auth", "method", "cert_file", "security", "policy",
    "whitelist_file", "audit_config", "audit_file", "tracing", "sample_rate", "log_level",
    "shutdown_timeout", "max_retires", "shutdown_timout", "metadata",
]  # fmt: skip
WHITELIST_KEYS = ["version", "plugins", "name", "path", "hash", "algorithm", "enabled", "metadata", "endpoint", "hsh"]

DOCUMENTED = (ConfigError, ConfigFileError)


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(
            ["30s", "250ms", "1h30m", "-5s", "5 parsecs", "executable", "grpc", "strict", "sha256:" + "a" * 64]
        ),
        st.sampled_from([f"SLOT{i}" for i in range(4)]),  # replaced by a tagged or bad scalar in YAML
    )


def documents(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(keys), inner, max_size=5),
        ),
        max_leaves=25,
    )


def top_level(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.dictionaries(st.sampled_from(keys), documents(keys), max_size=6), documents(keys))


def slot_fillers() -> st.SearchStrategy[str]:
    tagged = st.builds(
        lambda tag, value: f"{tag} {value}", st.sampled_from(TAGS + UNSAFE_TAGS), st.sampled_from(TAG_VALUES)
    )
    return st.one_of(tagged, st.sampled_from(BAD_SCALARS))


def as_yaml(data: Any, fillers: list[str]) -> str:
    text = yaml.safe_dump(data, default_flow_style=None, allow_unicode=True)
    for index, filler in enumerate(fillers):
        text = text.replace(f"SLOT{index}", filler)
    return text


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value).replace("inf", "inf").replace("nan", "nan")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None) + "}"
        )
    return json.dumps(str(value))


def as_toml(data: Any) -> str:
    if not isinstance(data, dict):
        return f"value = {toml_value(data)}\n"
    return "".join(f"{json.dumps(str(k))} = {toml_value(v)}\n" for k, v in data.items() if v is not None)


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """Bytes of `seed` with a few insertions, deletions and overwrites, some of them tokens
    parsers are known to trip on."""
    tokens = [t.encode() for t in [*TAGS, *UNSAFE_TAGS, *BAD_SCALARS, "[" * 50, "{" * 50, "\x00", "\xff", ": ", "\n- "]]
    edit = st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(min_value=0, max_value=max(len(seed) - 1, 0)),
        st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(tokens)),
    )

    def apply(edits: list[tuple[str, int, bytes]]) -> bytes:
        data = bytearray(seed)
        for kind, offset, chunk in edits:
            at = min(offset, len(data))
            if kind == "insert":
                data[at:at] = chunk
            elif kind == "delete":
                del data[at : at + len(chunk)]
            else:
                data[at : at + len(chunk)] = chunk
        return bytes(data)

    return st.lists(edit, min_size=1, max_size=6).map(apply)


def nested(depth: int, suffix: str) -> str:
    inner = "[" * depth + "]" * depth
    if suffix == ".json":
        return f'{{"shutdown_timeout": {inner}}}'
    if suffix == ".toml":
        return f"shutdown_timeout = {inner}\n"
    return f"shutdown_timeout: {inner}\n"


CONFIG_SEED = """\
log_level: info
shutdown_timeout: 30s
plugins:
  - name: auth
    executable: ./auth
    args: [--port, "8080"]
    env: [LOG_LEVEL=info]
    retry: {max_retries: 3, initial_interval: 100ms, max_interval: 5s}
    circuit_breaker: {failure_threshold: 5, recovery_timeout: 30s}
    connection: {request_timeout: 30s}
    metadata: {released: "2024-02-01"}
security:
  enabled: true
  policy: strict
  whitelist_file: plugins.whitelist
  audit_config: {enabled: true, audit_file: audit.db}
"""
WHITELIST_SEED = (
    'version: "1.0"\nplugins:\n  - name: auth\n    path: ./plugins/auth\n    hash: "sha256:'
    + "a" * 64
    + '"\n    enabled: true\n    metadata: {version: "1.2.3", released: 2024-02-01}\n'
    + '  - name: pricing\n    endpoint: "pricing.internal:9090"\n'
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def outcome(load: Any, path: Path) -> PluginError | None:
    """The coded error loading `path` gives, None when it loads; any other exception escapes
    and fails the test."""
    try:
        load(path)
    except PluginError as exc:
        return exc
    return None


def load_config(folder: Path, suffix: str, raw: bytes) -> None:
    path = folder / f"app{suffix}"
    path.write_bytes(raw)
    error = outcome(ManagerConfig.load, path)
    if error is not None:
        assert isinstance(error, DOCUMENTED), f"{type(error).__name__} {error.code} from a config file: {error}"
        assert 1000 <= error.code < 1100 or 1700 <= error.code < 1800, error
        assert error.message


def load_whitelist_file(folder: Path, name: str, raw: bytes) -> None:
    path = folder / name
    path.write_bytes(raw)
    error = outcome(load_whitelist, path)
    if error is not None:
        assert isinstance(error, SecurityError), f"{type(error).__name__} {error.code} from a whitelist: {error}"
        assert 1800 <= error.code < 1900, error
        assert error.message


@FUZZ
@given(data=top_level(CONFIG_KEYS), fillers=st.lists(slot_fillers(), min_size=4, max_size=4))
def test_structured_yaml_configs_give_only_coded_errors(folder: Path, data: Any, fillers: list[str]) -> None:
    load_config(folder, ".yaml", as_yaml(data, fillers).encode())


@FUZZ
@given(data=top_level(CONFIG_KEYS))
def test_structured_json_and_toml_configs_give_only_coded_errors(folder: Path, data: Any) -> None:
    load_config(folder, ".json", json.dumps(data, allow_nan=True).encode())
    load_config(folder, ".toml", as_toml(data).encode())


@FUZZ
@given(raw=mutated(CONFIG_SEED.encode()), suffix=st.sampled_from([".yaml", ".json", ".toml"]))
def test_mutated_config_files_give_only_coded_errors(folder: Path, raw: bytes, suffix: str) -> None:
    if suffix == ".json":
        raw = json.dumps(yaml.safe_load(CONFIG_SEED)).encode() if raw == CONFIG_SEED.encode() else raw
    load_config(folder, suffix, raw)


@FUZZ
@given(tag=st.sampled_from(TAGS + UNSAFE_TAGS), value=st.sampled_from(TAG_VALUES), key=st.sampled_from(CONFIG_KEYS))
def test_tagged_yaml_scalars_in_configs_give_only_coded_errors(folder: Path, tag: str, value: str, key: str) -> None:
    load_config(
        folder,
        ".yaml",
        f"{key}: {tag} {value}\nplugins:\n  - {{name: a, executable: x, {key}: {tag} {value}}}\n".encode(),
    )


@settings(FUZZ, max_examples=20)
@given(depth=st.integers(min_value=50, max_value=1500), suffix=st.sampled_from([".yaml", ".json", ".toml"]))
def test_deeply_nested_configs_give_only_coded_errors(folder: Path, depth: int, suffix: str) -> None:
    load_config(folder, suffix, nested(depth, suffix).encode())


@FUZZ
@given(data=top_level(WHITELIST_KEYS), fillers=st.lists(slot_fillers(), min_size=4, max_size=4))
def test_structured_whitelists_give_only_coded_errors(folder: Path, data: Any, fillers: list[str]) -> None:
    load_whitelist_file(folder, "plugins.whitelist", as_yaml(data, fillers).encode())
    load_whitelist_file(folder, "plugins.json", json.dumps(data, allow_nan=True).encode())


@FUZZ
@given(raw=mutated(WHITELIST_SEED.encode()))
def test_mutated_whitelists_give_only_coded_errors(folder: Path, raw: bytes) -> None:
    load_whitelist_file(folder, "plugins.whitelist", raw)


@FUZZ
@given(
    field=st.sampled_from(["version", "name", "path", "hash", "algorithm", "enabled", "endpoint", "metadata"]),
    filler=slot_fillers(),
)
def test_tagged_and_bad_scalars_in_whitelist_entries_give_only_coded_errors(
    folder: Path, field: str, filler: str
) -> None:
    entry = {"name": "auth", "path": "plugins/auth", "hash": "sha256:" + "a" * 64, "metadata": {"released": "x"}}
    target = "metadata" if field == "metadata" else field
    text = as_yaml({"version": "1.0", "plugins": [entry]}, [])
    if target == "metadata":
        text = text.replace("released: x", f"released: {filler}")
    elif target == "version":
        text = text.replace("version: '1.0'", f"version: {filler}")
    else:
        text = text.replace("plugins:\n- ", f"plugins:\n- {target}: {filler}\n  ", 1)
    load_whitelist_file(folder, "plugins.whitelist", text.encode())
