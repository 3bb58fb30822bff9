"""Turn files and plain data into validated `ManagerConfig`s, with errors that name the path."""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import sys
import tomllib
import typing
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from .._errors import ConfigError, ConfigFileError, ErrorCode
from .._models import Transport
from ._duration import parse_duration
from ._paths import resolve_paths, with_host_python
from ._structs import ManagerConfig, PluginConfig

__all__ = [
    "config_from_data",
    "convert_document",
    "data_format",
    "did_you_mean",
    "is_host",
    "load_config_file",
    "load_data_file",
    "parse_data",
    "read_data_file",
    "tracing_traces_url",
    "validate_plugin_config",
]

#: Upper bound on the nodes a document may expand to (YAML aliases counted each time used):
#: a whitelist of 10,000 entries with a few metadata keys each has about 200,000.
MAX_DOCUMENT_NODES = 250_000
#: Upper bound on how deeply mappings and lists may nest (configs nest about 5 deep).
MAX_NESTING = 64
#: Upper bound on the size of a config or whitelist file we read: a whitelist of 10,000
#: entries (name, path, hash, a few metadata keys) is about 3 MiB.
MAX_FILE_BYTES = 4 * 1024 * 1024

_S = typing.TypeVar("_S", bound=msgspec.Struct)

_MSGSPEC_ERROR = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def config_from_data(data: object, *, base_dir: str | os.PathLike[str] | None = None) -> ManagerConfig:
    """Validate plain data into a `ManagerConfig` (see `ManagerConfig.from_dict`).

    Args:
        data: The parsed document.
        base_dir: The folder relative paths resolve against (a config file's folder); None
            leaves them as written, to resolve against the working directory when used.

    Raises:
        ConfigError: Naming the path of the first bad value; a plugin is named by index and
            name (``plugins[2] ('auth').retry.max_retires: unknown key; did you mean ...``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"<root>: expected a mapping, got {type(data).__name__}", code=ErrorCode.CONFIG_WRONG_TYPE)
    try:
        normalized = _normalize(data, ManagerConfig, "")
        try:
            config = msgspec.convert(normalized, ManagerConfig)
        except msgspec.ValidationError as exc:
            raise _translate(str(exc)) from None
        _check_semantics(config)
    except ConfigError as exc:
        raise ConfigError(_name_plugin(exc.message, data), code=exc.code) from None
    return resolve_paths(config, base_dir)


def _name_plugin(message: str, data: dict[Any, Any]) -> str:
    """Add the plugin's name to a message about `plugins[i]`: ``plugins[2] ('auth')``."""
    match = re.match(r"plugins\[(\d+)\]", message)
    plugins = data.get("plugins")
    if match is None or not isinstance(plugins, list) or int(match.group(1)) >= len(plugins):
        return message
    item = plugins[int(match.group(1))]
    name = item.get("name") if isinstance(item, dict) else None
    if not isinstance(name, str) or not name:
        return message
    return f"{match.group(0)} ({name[:128]!r}){message[match.end() :]}"


def validate_plugin_config(config: Any, where: str) -> Any:
    """Check a `PluginConfig` built in Python as strictly as one read from a file.

    Struct constructors check types for mypy, not constraints at run time, so a name like
    "../x" or `max_retries=-1` would otherwise slip through `register()` or a builder.

    Raises:
        ConfigError: Naming `where` and the bad field.
    """
    try:
        checked = msgspec.convert(msgspec.to_builtins(config), type(config))
    except msgspec.ValidationError as exc:
        error = _translate(str(exc))
        raise ConfigError(f"{where}: {error.message}", code=error.code) from None
    check_plugin_config(checked, where)
    return with_host_python(checked) if isinstance(checked, PluginConfig) else checked


def convert_document(data: object, kind: type[_S], where: str) -> _S:
    """Validate a parsed document (a plugin manifest, say) into the Struct `kind`, with the
    config's rules: durations as "250ms", `env` as a list of "NAME=value", and errors that
    name `where` (the file) and the field.

    Raises:
        ConfigError: ``<where>: <field>: <what is wrong>``, coded as for a config file.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}", code=ErrorCode.CONFIG_WRONG_TYPE)
    try:
        return msgspec.convert(_normalize(data, kind, ""), kind)
    except msgspec.ValidationError as exc:
        error = _translate(str(exc), kind)
    except ConfigError as exc:
        error = exc
    raise ConfigError(f"{where}: {error.message}", code=error.code) from None


def load_data_file(path: str | os.PathLike[str], *, default_suffix: str | None = None) -> Any:
    """Read a YAML, TOML or JSON file into plain data, safely.

    YAML is read with the safe loader (no Python objects) and its alias expansion is bounded,
    so a "billion laughs" document is refused instead of exhausting memory.

    Args:
        path: The file.
        default_suffix: How to read a file whose suffix is none of the known ones (for
            example ".yaml" for a README-style `plugins.whitelist`); None refuses it.

    Raises:
        ConfigFileError: Missing (1701), unreadable or malformed (1702), an unknown suffix
            (1703), or too large, too deeply nested or too many nodes once aliases are
            expanded (1704).
    """
    file = Path(path)
    suffix = data_format(file, default_suffix)
    return parse_data(read_data_file(file), suffix, file)


def data_format(file: Path, default_suffix: str | None = None) -> str:
    """The format `file` is read as ('.yaml', '.yml', '.toml' or '.json').

    Raises:
        ConfigFileError: 1703 for any other suffix (when `default_suffix` is None).
    """
    suffix = file.suffix.lower()
    if suffix not in _SUFFIXES and default_suffix is not None:
        suffix = default_suffix
    if suffix not in _SUFFIXES:
        raise ConfigFileError(
            f"{file}: unsupported config format {suffix or '(none)'!r}; use .yaml, .yml, .toml or .json",
            code=ErrorCode.CONFIG_FILE_FORMAT,
        )
    return suffix


def read_data_file(file: Path) -> bytes:
    """The bytes of `file`, read once (parse and fingerprint these, never a second read).

    Raises:
        ConfigFileError: Missing (1701), unreadable (1702) or over `MAX_FILE_BYTES` (1704).
    """
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigFileError(f"{file}: no such file", code=ErrorCode.CONFIG_FILE_NOT_FOUND) from None
    except OSError as exc:
        raise ConfigFileError(f"{file}: cannot read: {exc.strerror}", code=ErrorCode.CONFIG_FILE_UNREADABLE) from exc
    except ValueError as exc:  # a path with a NUL byte
        raise ConfigFileError(f"{file!r}: cannot read: {exc}", code=ErrorCode.CONFIG_FILE_UNREADABLE) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigFileError(
            f"{file}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", code=ErrorCode.CONFIG_FILE_TOO_COMPLEX
        )
    return raw


def parse_data(raw: bytes, suffix: str, file: Path) -> Any:
    """Parse the bytes of a YAML, TOML or JSON document, bounded in nodes and nesting.

    Any failure of the parser is a coded error: the parsers also raise `ValueError` (a date
    like 2001-13-45, `!!int x`), `KeyError` (`!!bool maybe`), `AttributeError`
    (`!!timestamp x`) or `RecursionError` (brackets nested a thousand deep) on bad input.

    Raises:
        ConfigFileError: 1702 malformed, 1704 too deeply nested or too many nodes.
    """
    try:
        if suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix == ".json":
            data = json.loads(raw)
        else:
            import yaml  # only config loading needs it; plugin processes never pay for the import

            data = yaml.load(raw, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ConfigFileError(
            f"{file}: nested more than {MAX_NESTING} levels deep; refusing it", code=ErrorCode.CONFIG_FILE_TOO_COMPLEX
        ) from None
    except Exception as exc:  # a parser's failure on untrusted bytes, whatever its type
        reason = " ".join(str(exc).split())
        if not isinstance(exc, _PARSE_ERRORS) and not _is_yaml_error(exc):
            reason = f"{reason} ({type(exc).__name__})" if reason else type(exc).__name__
        raise ConfigFileError(f"{file}: malformed: {reason}", code=ErrorCode.CONFIG_FILE_UNREADABLE) from None
    _check_size(data, file)
    return data


_SUFFIXES = frozenset({".yaml", ".yml", ".toml", ".json"})
_PARSE_ERRORS = (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError)


def _is_yaml_error(exc: BaseException) -> bool:
    yaml = sys.modules.get("yaml")
    return yaml is not None and isinstance(exc, yaml.YAMLError)


def load_config_file(path: str | os.PathLike[str]) -> ManagerConfig:
    """Load a config file into a validated `ManagerConfig` (see `ManagerConfig.load`)."""
    data = load_data_file(path)
    if data is None:
        data = {}
    try:
        return config_from_data(data, base_dir=Path(os.path.abspath(path)).parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", code=exc.code) from None


def _check_size(data: Any, file: Path) -> None:
    """Walk the document as it would be walked once expanded, giving up past the bounds."""
    budget = MAX_DOCUMENT_NODES
    stack = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigFileError(
                f"{file}: the document expands to more than {MAX_DOCUMENT_NODES} nodes (aliases included); refusing it",
                code=ErrorCode.CONFIG_FILE_TOO_COMPLEX,
            )
        if isinstance(node, dict | list):
            if depth >= MAX_NESTING:
                raise ConfigFileError(
                    f"{file}: nested more than {MAX_NESTING} levels deep; refusing it",
                    code=ErrorCode.CONFIG_FILE_TOO_COMPLEX,
                )
            children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def _is_duration(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not typing.Annotated:
        return False
    return any(
        isinstance(meta, msgspec.Meta) and (meta.extra or {}).get("duration")
        for meta in typing.get_args(annotation)[1:]
    )


def _struct_type(annotation: Any) -> Any:
    """The Struct type a field holds directly or as `tuple[Struct, ...]`, else None."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is tuple and len(args) == 2 and args[1] is Ellipsis:
        inner = args[0]
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            return inner
    return None


def _normalize(data: dict[str, Any], struct: type[msgspec.Struct], path: str) -> dict[str, Any]:
    """Parse duration strings and `env` lists so msgspec sees the declared types."""
    hints = typing.get_type_hints(struct, include_extras=True)
    result: dict[str, Any] = {}
    for key, value in data.items():
        annotation = hints.get(key) if isinstance(key, str) else None
        here = f"{path}.{key}" if path else str(key)
        if annotation is None:
            result[key] = value  # msgspec reports unknown keys with their path
        elif _is_duration(annotation):
            try:
                result[key] = parse_duration(value)
            except ValueError as exc:
                raise ConfigError(f"{here}: {exc}", code=ErrorCode.CONFIG_INVALID_VALUE) from None
        elif key == "env" and isinstance(value, list):
            result[key] = _env_from_list(value, here)
        elif (inner := _struct_type(annotation)) is not None:
            if isinstance(value, dict):
                result[key] = _normalize(value, inner, here)
            elif isinstance(value, list) and inner is not annotation:
                result[key] = [
                    _normalize(item, inner, f"{here}[{index}]") if isinstance(item, dict) else item
                    for index, item in enumerate(value)
                ]
            else:
                result[key] = value
        else:
            result[key] = value
    return result


def _env_from_list(items: list[Any], path: str) -> dict[str, str]:
    """Accept the README's `["KEY=value", ...]` form of `env`."""
    env: dict[str, str] = {}
    for index, item in enumerate(items):
        if not isinstance(item, str) or "=" not in item or item.startswith("="):
            raise ConfigError(
                f"{path}[{index}]: expected 'NAME=value', got {item!r}", code=ErrorCode.CONFIG_INVALID_VALUE
            )
        name, _, value = item.partition("=")
        env[name] = value
    return env


def _translate(text: str, root: type[msgspec.Struct] = ManagerConfig) -> ConfigError:
    """Rewrite a msgspec validation message as a coded error that names the path (in a
    document of type `root`)."""
    match = _MSGSPEC_ERROR.match(text)
    message = match.group("message") if match else text
    path = (match.group("path") or "") if match else ""
    path = path.removeprefix(".")
    field = re.search(r"field `([^`]+)`", message)
    if message.startswith("Object contains unknown field") and field:
        hint = did_you_mean(field.group(1), _fields_at(path, root))
        path = f"{path}.{field.group(1)}" if path else field.group(1)
        return ConfigError(f"{path}: unknown key{hint}", code=ErrorCode.CONFIG_UNKNOWN_KEY)
    if message.startswith("Object missing required field") and field:
        path = f"{path}.{field.group(1)}" if path else field.group(1)
        return ConfigError(f"{path}: required key is missing", code=ErrorCode.CONFIG_MISSING_FIELD)
    where = path or "<root>"
    message = message.replace("`", "")
    if message.startswith("Invalid enum value"):
        return _bad_enum_value(where, path, message.removeprefix("Invalid enum value "), root)
    if (path == "name" or path.endswith(".name")) and "matching" in message:
        return ConfigError(
            f"{where}: a plugin name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            code=ErrorCode.CONFIG_INVALID_NAME,
        )
    constraint = re.match(r"Expected \S+ (?:[<>]=?|matching)", message)
    if constraint:
        return ConfigError(f"{where}: {message[0].lower()}{message[1:]}", code=ErrorCode.CONFIG_INVALID_VALUE)
    if message.startswith("Expected"):
        return ConfigError(f"{where}: {message[0].lower()}{message[1:]}", code=ErrorCode.CONFIG_WRONG_TYPE)
    return ConfigError(f"{where}: {message}", code=ErrorCode.CONFIG_INVALID)


def _bad_enum_value(where: str, path: str, value: str, root: type[msgspec.Struct]) -> ConfigError:
    """A value that is none of its enum's: name the choices, and the closest one if any."""
    enum = _field_type(path, root)
    if not (isinstance(enum, type) and issubclass(enum, Enum)):
        return ConfigError(f"{where}: {value} is not a valid value", code=ErrorCode.CONFIG_INVALID_VALUE)
    what, code = _ENUMS.get(enum.__name__, ("a valid value", ErrorCode.CONFIG_INVALID_VALUE))
    valid = [str(member.value) for member in enum]
    choices = ", ".join(repr(choice) for choice in valid)
    hint = did_you_mean(value.strip("'\""), valid)
    return ConfigError(f"{where}: {value} is not {what} (choose from {choices}){hint}", code=code)


_ENUMS = {
    "Transport": ("a transport", ErrorCode.CONFIG_UNKNOWN_TRANSPORT),
    "AuthMethod": ("an auth method", ErrorCode.CONFIG_UNKNOWN_AUTH_METHOD),
    "SecurityPolicy": ("a security policy", ErrorCode.CONFIG_INVALID_VALUE),
}


def _field_type(path: str, root: type[msgspec.Struct] = ManagerConfig) -> Any:
    """The declared type at a msgspec path such as ``plugins[0].auth.method`` (of a `root`
    document; of a `PluginConfig` checked alone when the path is none of a config's), else None."""
    parts = [part for part in re.sub(r"\[\d+\]", "", path).split(".") if part]
    struct: Any = root
    if root is ManagerConfig and not (parts and parts[0] in ManagerConfig.__struct_fields__):
        struct = PluginConfig
    for part in parts[:-1]:
        struct = _struct_type(typing.get_type_hints(struct, include_extras=True).get(part))
        if struct is None:
            return None
    return typing.get_type_hints(struct).get(parts[-1]) if parts else None


def did_you_mean(key: str, valid: Iterable[str]) -> str:
    """``"; did you mean 'max_retries'?"`` for the closest of `valid`, or "" when none is close."""
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fields_at(path: str, root: type[msgspec.Struct] = ManagerConfig) -> tuple[str, ...]:
    """The keys valid at a msgspec path such as ``plugins[2].retry`` (none if unknown)."""
    struct: Any = root
    for part in filter(None, re.sub(r"\[\d+\]", "", path).split(".")):
        struct = _struct_type(typing.get_type_hints(struct, include_extras=True).get(part))
        if struct is None:
            return ()
    return tuple(struct.__struct_fields__)


def _check_semantics(config: ManagerConfig) -> None:
    """Rules that span fields: names unique, each transport has what it needs."""
    seen: dict[str, int] = {}
    for index, plugin in enumerate(config.plugins):
        here = f"plugins[{index}]"
        if plugin.name in seen:
            raise ConfigError(
                f"{here}.name: duplicate plugin name {plugin.name!r} (also plugins[{seen[plugin.name]}])",
                code=ErrorCode.CONFIG_DUPLICATE_PLUGIN,
            )
        seen[plugin.name] = index
        check_plugin_config(plugin, here)
    bounds = config.metrics.buckets
    for index in range(1, len(bounds)):
        if bounds[index] <= bounds[index - 1]:
            raise ConfigError(
                f"metrics.buckets[{index}]: bucket bounds must increase strictly, got {bounds[index]!r} "
                f"after {bounds[index - 1]!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
    if config.hot_reload.enabled and not config.hot_reload.file:
        raise ConfigError(
            "hot_reload.file: required when hot_reload.enabled is true (the configuration file to watch)",
            code=ErrorCode.CONFIG_MISSING_FIELD,
        )
    _check_discovery(config)
    level = config.log_level.lower()
    levels = ("debug", "info", "warning", "error", "critical")
    if level not in levels:
        raise ConfigError(
            f"log_level: expected one of {', '.join(levels)}, got {config.log_level!r}{did_you_mean(level, levels)}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    if config.tracing.endpoint:
        tracing_traces_url(config.tracing.endpoint)
    _check_prometheus(config)


_PROMETHEUS_NAME_PART = re.compile(r"(?!__)[A-Za-z_][A-Za-z0-9_]*")


def _check_prometheus(config: ManagerConfig) -> None:
    prometheus = config.metrics.prometheus
    for field in ("namespace", "subsystem"):
        value = getattr(prometheus, field)
        if value and not _PROMETHEUS_NAME_PART.fullmatch(value):
            raise ConfigError(
                f"metrics.prometheus.{field}: {value[:200]!r} is not a Prometheus name part: letters, digits "
                "and '_', not starting with a digit or '__' (or empty)",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
    address = prometheus.address
    if not is_host(address):
        raise ConfigError(
            f"metrics.prometheus.address: {address[:200]!r} is not an IP address or host name (no scheme, "
            "port or brackets: e.g. '127.0.0.1', '0.0.0.0', '::', 'localhost')",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_host(address: str) -> bool:
    """Whether `address` is an IP address or a host name a server can listen on: no scheme,
    port or brackets (``127.0.0.1``, ``::``, ``localhost``, ``metrics.internal``)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        labels = address.removesuffix(".").split(".")
        return bool(address) and len(address) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)
    return True


def tracing_traces_url(endpoint: str, where: str = "tracing.endpoint") -> str:
    """The OTLP/HTTP traces URL of a `tracing.endpoint`: an ``http://`` or ``https://`` URL.

    A base URL (``http://collector:4318``, or one with a path prefix such as
    ``https://gateway/otlp``) gets ``/v1/traces`` appended, as `OTEL_EXPORTER_OTLP_ENDPOINT`
    does; a URL that already ends in ``/v1/traces`` is used as written.

    Raises:
        ConfigError: `where` names the field (1003): not an http(s) URL with a host, a bad
            port, or a query or fragment.
    """
    try:
        parts = urlsplit(endpoint)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        raise ConfigError(
            f"{where}: not a valid URL ({exc}): {endpoint[:200]!r}", code=ErrorCode.CONFIG_INVALID_VALUE
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or parts.query or parts.fragment:
        raise ConfigError(
            f"{where}: expected an http:// or https:// URL of an OTLP/HTTP collector, such as "
            f"'http://localhost:4318' (no query or fragment), got {endpoint[:200]!r}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/traces"):
        path = f"{path}/v1/traces"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _check_discovery(config: ManagerConfig) -> None:
    discovery = config.discovery
    if discovery.enabled and not discovery.directories:
        raise ConfigError(
            "discovery.directories: discovery is enabled but names no folder to look in",
            code=ErrorCode.CONFIG_MISSING_FIELD,
        )
    for index, folder in enumerate(discovery.directories):
        if not folder.strip() or "\x00" in folder:
            raise ConfigError(
                f"discovery.directories[{index}]: expected a folder path, got {folder!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
    if "/" in discovery.pattern or "\x00" in discovery.pattern:
        raise ConfigError(
            f"discovery.pattern: a pattern matches file names, without '/': got {discovery.pattern!r}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )


def check_plugin_config(plugin: Any, here: str) -> None:
    """Check one plugin's cross-field rules; `here` is its path for messages."""
    if plugin.transport is Transport.EXECUTABLE and not plugin.executable:
        raise ConfigError(
            f"{here}.executable: an executable plugin needs 'executable'",
            code=ErrorCode.CONFIG_MISSING_EXECUTABLE,
        )
    if plugin.transport is Transport.GO_PLUGIN:
        if not plugin.executable:
            raise ConfigError(
                f"{here}.executable: a go-plugin plugin needs 'executable'",
                code=ErrorCode.CONFIG_MISSING_EXECUTABLE,
            )
        handshake = plugin.go_plugin
        for field in ("magic_cookie_key", "magic_cookie_value", "service"):
            if not getattr(handshake, field):
                raise ConfigError(
                    f"{here}.go_plugin.{field}: a go-plugin plugin needs its handshake's {field}",
                    code=ErrorCode.CONFIG_MISSING_FIELD,
                )
        if "=" in handshake.magic_cookie_key or "\0" in handshake.magic_cookie_key:
            raise ConfigError(
                f"{here}.go_plugin.magic_cookie_key: an environment variable name (no '=' or NUL), "
                f"not {handshake.magic_cookie_key!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
    if plugin.transport in (Transport.GRPC, Transport.GRPC_TLS) and not plugin.endpoint:
        raise ConfigError(
            f"{here}.endpoint: a {plugin.transport.value} plugin needs 'endpoint'",
            code=ErrorCode.CONFIG_MISSING_ENDPOINT,
        )
    retry = plugin.retry
    if retry.max_interval < retry.initial_interval:
        raise ConfigError(
            f"{here}.retry.max_interval: must be at least initial_interval ({retry.initial_interval}s)",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
