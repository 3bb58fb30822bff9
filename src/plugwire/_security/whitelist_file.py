"""Editing whitelist files: add, update and remove entries, written whole and atomically.

Each edit runs under an exclusive lock on the whitelist's folder (`flock`), so edits made at
the same time by several processes are applied one after the other and none is lost. The
file is read, changed as data, written in its own format (by suffix, as `load_whitelist`
reads it) to a temporary file beside it, checked by the loader itself, and renamed over the
original (keeping its mode). A reader, such as a host watching the file, sees either the old
file or the new one, never a half-written one. Comments in a YAML file are not kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._config import data_format, did_you_mean, parse_data
from .._errors import ConfigFileError, ErrorCode, SecurityError
from .hashing import check_algorithm
from .launch import inspect_file
from .whitelist import Whitelist, check_entry_name, parse_whitelist, read_whitelist

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: edits are not serialized between processes
    fcntl = None  # type: ignore[assignment]

__all__ = ["WhitelistEdit", "add_entry", "remove_entry", "update_entry"]

_FRESH_VERSION = "1.0"


@dataclass(frozen=True, slots=True)
class WhitelistEdit:
    """What an edit did to a whitelist file.

    Attributes:
        file: The whitelist file (as given, made absolute).
        action: "added", "updated", "unchanged" (an update that changed nothing; the file
            was not rewritten) or "removed".
        entry: The entry as written (as removed, for "removed").
        previous: The entry before an update, else None.
        created: Whether the file did not exist before.
    """

    file: Path
    action: str
    entry: dict[str, Any]
    previous: dict[str, Any] | None = None
    created: bool = False


def add_entry(
    file: str | os.PathLike[str],
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    algorithm: str = "sha256",
    enabled: bool = True,
) -> WhitelistEdit:
    """Add an entry for plugin `name` to whitelist `file`, creating the file if missing.

    A file entry (`path`) is pinned by the hash of the file as the host would read it (the
    same safety checks as a launch); its path is written relative to the whitelist's folder
    when it lies below it, else absolute. An endpoint entry (`endpoint`) admits a gRPC plugin.

    Raises:
        SecurityError: 1807 when `name` (or `endpoint`) is already listed; 1804 for an
            unreadable or invalid file, a bad name, or neither or both of path and endpoint;
            1805 for an unknown algorithm; 1808-1810 for a plugin file the host would refuse.
    """
    target = Path(os.path.abspath(file))
    check_entry_name(name, where=str(target))
    algorithm = check_algorithm(algorithm, where="algorithm")
    if (path is None) == (endpoint is None):
        raise _malformed(f"{target}: an entry pins either a file or an endpoint: give exactly one")

    def change(data: dict[str, Any], current: Whitelist) -> WhitelistEdit:
        existing = current.get(name)
        if existing is not None:
            index = [entry.name for entry in current].index(name)
            raise SecurityError(
                f"{target}: {name!r} is already listed (plugins[{index}])", code=ErrorCode.WHITELIST_DUPLICATE_NAME
            )
        entry: dict[str, Any] = {"name": name}
        if endpoint is not None:
            entry["endpoint"] = endpoint.strip()
        else:
            assert path is not None  # exactly one of path and endpoint, checked above
            written, resolved = _entry_path(path, target)
            digest = _hash(resolved, algorithm, current)
            entry.update(path=written, hash=f"{algorithm}:{digest}", algorithm=algorithm)
        entry["enabled"] = enabled
        data.setdefault("plugins", []).append(entry)
        return WhitelistEdit(target, "added", entry)

    return _edit(target, change, create=True)


def update_entry(
    file: str | os.PathLike[str],
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    algorithm: str | None = None,
    enabled: bool | None = None,
) -> WhitelistEdit:
    """Re-pin the entry for plugin `name`: hash its file again (or the file at a new `path`),
    or point an endpoint entry at a new `endpoint`; optionally change its algorithm or
    enable or disable it. The file is rewritten only when something changed.

    Raises:
        SecurityError: 1801 when no entry has that name (with the closest name); 1804 for a
            missing, unreadable or invalid file, or a path for an endpoint entry (or the other
            way round); 1805 for an unknown algorithm; 1808-1810 for a plugin file the host
            would refuse.
    """
    target = Path(os.path.abspath(file))
    if algorithm is not None:
        algorithm = check_algorithm(algorithm, where="algorithm")

    def change(data: dict[str, Any], current: Whitelist) -> WhitelistEdit:
        index = _index_of(name, current, target)
        raw: dict[str, Any] = data["plugins"][index]
        before = dict(raw)
        parsed = current.entries[index]
        if parsed.endpoint is not None:
            if path is not None:
                raise _malformed(f"{target}: {name!r} pins an endpoint, not a file; remove it and add it again")
            if endpoint is not None:
                raw["endpoint"] = endpoint.strip()
            if algorithm is not None:
                raw["algorithm"] = algorithm
        else:
            if endpoint is not None:
                raise _malformed(f"{target}: {name!r} pins a file, not an endpoint; remove it and add it again")
            chosen = algorithm or parsed.algorithm
            if path is not None:
                raw["path"], resolved = _entry_path(path, target)
            else:
                assert parsed.path is not None  # a file entry has a path
                resolved = parsed.path
            raw["hash"] = f"{chosen}:{_hash(resolved, chosen, current, skip=index)}"
            if "algorithm" in raw or algorithm is not None:
                raw["algorithm"] = chosen
        if enabled is not None:
            raw["enabled"] = enabled
        return WhitelistEdit(target, "updated" if raw != before else "unchanged", dict(raw), before)

    return _edit(target, change, create=False)


def remove_entry(file: str | os.PathLike[str], name: str) -> WhitelistEdit:
    """Remove the entry for plugin `name` from whitelist `file`.

    Raises:
        SecurityError: 1801 when no entry has that name (with the closest name); 1804 for a
            missing, unreadable or invalid file.
    """
    target = Path(os.path.abspath(file))

    def change(data: dict[str, Any], current: Whitelist) -> WhitelistEdit:
        removed: dict[str, Any] = data["plugins"].pop(_index_of(name, current, target))
        return WhitelistEdit(target, "removed", removed)

    return _edit(target, change, create=False)


# ---------------------------------------------------------------------------- the edit
def _edit(target: Path, change: Callable[[dict[str, Any], Whitelist], WhitelistEdit], *, create: bool) -> WhitelistEdit:
    # Write through symlinks (replace the file they lead to, not the link itself).
    real = Path(os.path.realpath(target))
    suffix = data_format(target, ".yaml")
    with _folder_lock(real.parent, target):
        created = not os.path.lexists(real)
        mode: int | None = None  # a new file: 0666 less the umask, as any new file
        if created and create:
            raw = b""
        else:
            raw = read_whitelist(real)
            mode = stat.S_IMODE(os.stat(real).st_mode)
        if raw.strip():
            current = parse_whitelist(raw, target)  # refuse to edit a file the host would refuse
            data = _parse(raw, suffix, target)
        else:  # new, or empty: a whitelist without entries
            current = Whitelist(_FRESH_VERSION, (), target)
            data = {"version": _FRESH_VERSION, "plugins": []}
        result = change(data, current)
        if result.action == "unchanged":
            return result
        text = _dump(data, suffix)
        parse_whitelist(text, target)  # what is written loads: never replace a good file with a bad one
        _replace(real, text, mode)
    return WhitelistEdit(result.file, result.action, result.entry, result.previous, created)


def _parse(raw: bytes, suffix: str, target: Path) -> dict[str, Any]:
    try:
        data = parse_data(raw, suffix, target)
    except ConfigFileError as exc:  # pragma: no cover - parse_whitelist read the same bytes first
        raise _malformed(f"whitelist {exc.message}") from exc
    if data is None:  # a YAML file of comments only
        data = {}
    data.setdefault("plugins", [])
    return data  # type: ignore[no-any-return]


def _index_of(name: str, current: Whitelist, target: Path) -> int:
    names = [entry.name for entry in current]
    if name in names:
        return names.index(name)
    hint = did_you_mean(name, names) or ("; the whitelist has no entries" if not names else "")
    raise SecurityError(f"{target}: no entry named {name!r}{hint}", code=ErrorCode.NOT_WHITELISTED)


def _entry_path(path: str | os.PathLike[str], target: Path) -> tuple[str, Path]:
    """The path to write for `path` (relative to the whitelist's folder when below it) and
    the absolute path the loader will resolve it to."""
    absolute = Path(os.path.abspath(path))
    folder = target.parent
    if absolute.is_relative_to(folder):
        return f"./{absolute.relative_to(folder).as_posix()}", absolute
    return str(absolute), absolute


def _hash(path: Path, algorithm: str, current: Whitelist, skip: int | None = None) -> str:
    """Hash `path` as a launch would: the same location and file checks (symlinks may lead
    only into the folders of the edited whitelist's files), through one descriptor."""
    folders = {entry.path.parent for index, entry in enumerate(current) if entry.path and index != skip}
    if not os.path.lexists(path):
        raise SecurityError(f"{path}: no such file", code=ErrorCode.UNSAFE_FILE)
    return inspect_file(path, algorithm, (*folders, path.parent)).digest


@contextlib.contextmanager
def _folder_lock(folder: Path, target: Path) -> Iterator[None]:
    # The folder, not the file: the file is replaced by rename, so a lock on it would guard
    # an inode that is gone, and a lock file would be litter beside the whitelist.
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _malformed(f"{target}: cannot open its folder {folder}: {exc.strerror}") from exc
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _replace(real: Path, text: bytes, mode: int | None) -> None:
    """Write `text` to a new file beside `real` and rename it over `real` (with `mode`, or
    as a new file when None)."""
    temp = real.parent / f".{real.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600 if mode is not None else 0o666)
    except OSError as exc:
        raise _malformed(f"{real}: cannot write in {real.parent}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, real)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise _malformed(f"{real}: cannot write: {exc.strerror}") from exc
    with contextlib.suppress(OSError):  # the rename is durable once the folder is synced
        folder = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _malformed(message: str) -> SecurityError:
    return SecurityError(message, code=ErrorCode.WHITELIST_MALFORMED)


# ---------------------------------------------------------------------------- formats
def _dump(data: dict[str, Any], suffix: str) -> bytes:
    if suffix == ".json":
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if suffix == ".toml":
        return _toml(data).encode("utf-8")
    import yaml  # as the loader: only whitelist and config files need it

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # a shared mapping is written out twice
            return True

    text: str = yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=4096)
    return text.encode("utf-8")


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml(data: dict[str, Any]) -> str:
    """TOML for a whitelist's data: top-level values, then one `[[plugins]]` table each."""
    lines = [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in data.items() if key != "plugins"]
    for entry in data.get("plugins", []):
        lines += ["", "[[plugins]]"]
        lines += [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in entry.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_key(key: Any) -> str:
    text = str(key)
    return text if _BARE_KEY.match(text) else json.dumps(text, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, dt.date | dt.time):  # TOML's own dates and times, read back as such
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(key)} = {_toml_value(item)}" for key, item in value.items()) + "}"
    raise _malformed(f"cannot write {type(value).__name__} values to TOML")
