"""The plugin whitelist: which plugins may run, pinned by the hash of their bytes.

The README's format, in YAML (the default, also for a suffix-less `plugins.whitelist`), JSON
or TOML::

    version: "1.0"
    plugins:
      - name: "auth-service"
        path: "./plugins/auth-service"     # relative to the whitelist's folder
        hash: "sha256:a1b2..."
        algorithm: "sha256"
        enabled: true
        metadata: {version: "1.2.3"}
      - name: "pricing"
        endpoint: "pricing.internal:9090"  # a gRPC plugin, pinned by endpoint
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .._config import data_format, did_you_mean, parse_data, read_data_file
from .._errors import ConfigFileError, ErrorCode, SecurityError
from .hashing import check_algorithm, check_hex_digest

__all__ = [
    "Whitelist",
    "WhitelistEntry",
    "check_entry_name",
    "has_parent_segment",
    "load_whitelist",
    "parse_whitelist",
    "read_whitelist",
    "whitelist_fingerprint",
    "whitelist_from_data",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ENTRY_KEYS = frozenset({"name", "path", "hash", "algorithm", "enabled", "metadata", "endpoint"})
_TOP_KEYS = frozenset({"version", "plugins"})


@dataclass(frozen=True, slots=True)
class WhitelistEntry:
    """One pinned plugin.

    Attributes:
        name: The plugin name it admits.
        path: The absolute path of the pinned file (relative paths were resolved against the
            whitelist's folder), or None for an endpoint entry.
        endpoint: The gRPC endpoint it admits, or None for a file entry.
        algorithm: The hash algorithm (`sha256`, `sha512` or `blake2b`).
        digest: The pinned hex digest ("" for an endpoint entry).
        enabled: False keeps the entry but refuses the plugin.
        metadata: Free-form facts (version, owner) copied into audit rows when configured.
    """

    name: str
    path: Path | None
    endpoint: str | None
    algorithm: str
    digest: str
    enabled: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def pinned(self) -> str:
        """The hash as written in whitelists: ``algorithm:hexdigest``."""
        return f"{self.algorithm}:{self.digest}" if self.digest else ""


@dataclass(frozen=True, slots=True)
class Whitelist:
    """A loaded, validated whitelist (immutable; a reload builds a new one).

    Attributes:
        version: The file's `version`.
        entries: The entries in file order.
        source: The file it came from, if any.
        fingerprint: sha256 of the file's bytes (or of the data), to tell versions apart.
    """

    version: str
    entries: tuple[WhitelistEntry, ...]
    source: Path | None = None
    fingerprint: str = ""

    def get(self, name: str) -> WhitelistEntry | None:
        """The entry for plugin `name`, if any."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    def by_endpoint(self, endpoint: str) -> WhitelistEntry | None:
        """The endpoint entry admitting `endpoint`, if any."""
        for entry in self.entries:
            if entry.endpoint == endpoint:
                return entry
        return None

    @property
    def has_endpoints(self) -> bool:
        """Whether any entry pins a gRPC endpoint (then every gRPC plugin must match one)."""
        return any(entry.endpoint for entry in self.entries)

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders holding pinned files: symlinks may not lead outside them."""
        seen: dict[Path, None] = {}
        for entry in self.entries:
            if entry.path is not None:
                seen[entry.path.parent] = None
        return tuple(seen)

    def __iter__(self) -> Iterator[WhitelistEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def check_entry_name(name: object, *, where: str = "") -> str:
    """Return `name` if it is a valid entry name (1-128 letters, digits, '.', '_' or '-',
    starting with a letter or digit).

    Raises:
        SecurityError: 1804 naming `where` and the name.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        prefix = f"{where}: " if where else ""
        raise _malformed(f"{prefix}name: expected 1-128 letters, digits, '.', '_' or '-', got {name!r}")
    return name


def has_parent_segment(path: str) -> bool:
    """Whether `path` has a `..` segment (with either slash)."""
    return ".." in PurePosixPath(path.replace("\\", "/")).parts


def load_whitelist(path: str | os.PathLike[str], *, default_algorithm: str = "sha256") -> Whitelist:
    """Load and validate a whitelist file (YAML, JSON or TOML; other suffixes read as YAML).

    YAML is read with the safe loader (no `!!python/object`), with alias expansion, nesting
    and size bounded (at most 4 MiB: about 13,000 entries). The file is read once: the
    entries and the fingerprint come from the same bytes, even if the file changes meanwhile.
    This blocks on I/O and parsing; from async code call it in a worker thread.

    Raises:
        SecurityError: 1804 for a missing, malformed or unsafe file, else the code of the
            first bad entry (1805-1808), the message naming the entry.
    """
    file = Path(os.path.abspath(path))
    return parse_whitelist(read_whitelist(file), file, default_algorithm=default_algorithm)


def read_whitelist(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a whitelist file (bounded as `load_whitelist` says).

    Raises:
        SecurityError: 1804, the file is missing, unreadable or too large.
    """
    try:
        return read_data_file(Path(path))
    except ConfigFileError as exc:
        raise SecurityError(f"whitelist {exc.message}", code=ErrorCode.WHITELIST_MALFORMED) from exc


def parse_whitelist(raw: bytes, file: Path, *, default_algorithm: str = "sha256") -> Whitelist:
    """Validate the bytes of whitelist `file` (an absolute path: relative entries resolve
    against its folder); the fingerprint is their sha256.

    Raises:
        SecurityError: As `load_whitelist`.
    """
    try:
        data = parse_data(raw, data_format(file, ".yaml"), file)
    except ConfigFileError as exc:
        raise SecurityError(f"whitelist {exc.message}", code=ErrorCode.WHITELIST_MALFORMED) from exc
    return whitelist_from_data(
        data,
        base_dir=file.parent,
        source=file,
        default_algorithm=default_algorithm,
        fingerprint=whitelist_fingerprint(raw),
    )


def whitelist_fingerprint(raw: bytes) -> str:
    """The fingerprint of a whitelist's bytes (sha256, hex)."""
    return hashlib.sha256(raw).hexdigest()


def whitelist_from_data(
    data: Any,
    *,
    base_dir: str | os.PathLike[str],
    source: Path | None = None,
    default_algorithm: str = "sha256",
    fingerprint: str = "",
) -> Whitelist:
    """Validate parsed whitelist data; relative paths resolve against `base_dir`.

    Raises:
        SecurityError: As `load_whitelist`.
    """
    where = str(source) if source else "whitelist"
    default_algorithm = check_algorithm(default_algorithm, where=f"{where}: hash_algorithm")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _malformed(f"{where}: expected a mapping at the top, got {type(data).__name__}")
    unknown = sorted(str(key) for key in data if key not in _TOP_KEYS)
    if unknown:
        hint = did_you_mean(unknown[0], _TOP_KEYS) or "; expected version, plugins"
        raise _malformed(f"{where}: unknown key {unknown[0]!r}{hint}")
    version = data.get("version", "1.0")
    if not isinstance(version, str | int | float) or isinstance(version, bool):
        raise _malformed(f"{where}: version: expected a string, got {type(version).__name__}")
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list):
        raise _malformed(f"{where}: plugins: expected a list, got {type(plugins).__name__}")
    entries: list[WhitelistEntry] = []
    names: dict[str, int] = {}
    endpoints: dict[str, int] = {}
    base = Path(os.path.abspath(base_dir))
    for index, item in enumerate(plugins):
        entry = _entry(item, index, where, base, default_algorithm)
        label = f"{where}: plugins[{index}] ({entry.name!r})"
        if entry.name in names:
            raise SecurityError(
                f"{label}: duplicate name (also plugins[{names[entry.name]}])",
                code=ErrorCode.WHITELIST_DUPLICATE_NAME,
            )
        names[entry.name] = index
        if entry.endpoint is not None:
            if entry.endpoint in endpoints:
                raise SecurityError(
                    f"{label}: duplicate endpoint {entry.endpoint!r} (also plugins[{endpoints[entry.endpoint]}])",
                    code=ErrorCode.WHITELIST_DUPLICATE_NAME,
                )
            endpoints[entry.endpoint] = index
        entries.append(entry)
    return Whitelist(version=str(version), entries=tuple(entries), source=source, fingerprint=fingerprint)


def _entry(item: Any, index: int, where: str, base: Path, default_algorithm: str) -> WhitelistEntry:
    label = f"{where}: plugins[{index}]"
    if not isinstance(item, dict):
        raise _malformed(f"{label}: expected a mapping, got {type(item).__name__}")
    name = check_entry_name(item.get("name"), where=label)
    label = f"{label} ({name!r})"
    unknown = sorted(str(key) for key in item if key not in _ENTRY_KEYS)
    if unknown:
        raise _malformed(f"{label}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], _ENTRY_KEYS)}")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _malformed(f"{label}: enabled: expected true or false, got {enabled!r}")
    metadata = _metadata(item.get("metadata", {}), label)
    endpoint = item.get("endpoint")
    raw_path = item.get("path")
    if endpoint is not None:
        if raw_path is not None or item.get("hash") is not None:
            raise _malformed(f"{label}: an entry pins either an endpoint or a file (path and hash), not both")
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise _malformed(f"{label}: endpoint: expected a non-empty string, got {endpoint!r}")
        algorithm = check_algorithm(str(item.get("algorithm", default_algorithm)), where=f"{label}: algorithm")
        return WhitelistEntry(name, None, endpoint.strip(), algorithm, "", enabled, metadata)
    if not isinstance(raw_path, str) or not raw_path.strip() or "\x00" in raw_path:
        raise _malformed(f"{label}: path: expected a file path, got {raw_path!r}")
    if has_parent_segment(raw_path):
        raise SecurityError(
            f"{label}: path {raw_path!r} has a '..' segment; write the path without it",
            code=ErrorCode.PATH_TRAVERSAL,
        )
    algorithm, digest = _hash(item, label, default_algorithm)
    path = Path(raw_path) if os.path.isabs(raw_path) else base / raw_path
    return WhitelistEntry(name, Path(os.path.normpath(path)), None, algorithm, digest, enabled, metadata)


def _hash(item: dict[str, Any], label: str, default_algorithm: str) -> tuple[str, str]:
    value = item.get("hash")
    if not isinstance(value, str) or not value.strip():
        raise _malformed(f"{label}: hash: expected 'algorithm:hexdigest', got {value!r}")
    declared = item.get("algorithm")
    if declared is not None and not isinstance(declared, str):
        raise _malformed(f"{label}: algorithm: expected a string, got {declared!r}")
    prefix, _, digest = value.strip().rpartition(":")
    algorithm = check_algorithm(declared or prefix or default_algorithm, where=f"{label}: algorithm")
    if prefix and declared and check_algorithm(prefix, where=f"{label}: hash") != algorithm:
        raise SecurityError(
            f"{label}: hash says {prefix!r} but algorithm says {declared!r}",
            code=ErrorCode.UNKNOWN_HASH_ALGORITHM,
        )
    if prefix:
        check_algorithm(prefix, where=f"{label}: hash")
    return algorithm, check_hex_digest(algorithm, digest, where=f"{label}: hash")


def _metadata(value: Any, label: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _malformed(f"{label}: metadata: expected a mapping, got {type(value).__name__}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, dict | list):
            raise _malformed(f"{label}: metadata.{key}: expected a plain value, got {type(item).__name__}")
        result[str(key)] = "" if item is None else str(item)
    return result


def _malformed(message: str) -> SecurityError:
    return SecurityError(message, code=ErrorCode.WHITELIST_MALFORMED)
