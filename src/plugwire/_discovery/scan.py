"""One look at the plugin folders: what is there to run, and what is refused and why.

Blocking (it reads the file system and hashes): the manager runs it in a worker thread.
The checks are the security system's own (`check_location`: `..` segments 1808 and
symlinks leaving the folder 1810; `open_checked`: anything but a regular file of the host's
user, not group- or world-writable, 1809), applied whether security is on or not.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ConfigError, ConfigFileError, ErrorCode, PluginError, SecurityError
from .._models import Transport
from .._security.hashing import digest_fd
from .._security.launch import check_location, open_checked
from .._sources import Grpc, PluginSource, Subprocess
from .._transports.subprocess import LaunchHook, SubprocessOptions
from .manifest import MANIFEST_NAME, PluginManifest, read_manifest

__all__ = ["Candidate", "Fingerprint", "Refusal", "hash_guard", "scan", "verify_hash"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Fingerprint = tuple[int, ...]
"""What changes when a plugin's files change: (device, inode, size, mtime, ctime) of each."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A plugin found, ready to register.

    Attributes:
        name: Its name: the manifest's, else the file's.
        path: The executable file, or the folder holding the manifest.
        source: How to run it.
        fingerprint: Changes whenever its files do.
        manifest: Its manifest, if it has one.
    """

    name: str
    path: Path
    source: PluginSource
    fingerprint: Fingerprint
    manifest: PluginManifest | None = None

    @property
    def metadata(self) -> dict[str, str]:
        """What the plugin's config `metadata` records about where it was found."""
        facts = {"discovered": str(self.path)}
        if self.manifest is not None:
            facts.update(
                manifest=str(self.path / MANIFEST_NAME),
                version=self.manifest.version,
                description=self.manifest.description,
                capabilities=",".join(self.manifest.capabilities),
            )
        return facts


@dataclass(frozen=True, slots=True)
class Refusal:
    """Something found that is not run, and why.

    Attributes:
        path: The file or folder.
        code: The error code (`plugwire.errors.ErrorCode`).
        reason: The error's message.
        name: The plugin's name, when known.
        fingerprint: The files' state when refused: the same files are not tried again.
        audited: The security engine recorded this refusal already (discovery records the
            others when an audit log is on).
    """

    path: str
    code: int
    reason: str
    name: str | None = None
    fingerprint: Fingerprint = field(default=(), compare=False)
    audited: bool = field(default=False, compare=False)


def scan(directories: Sequence[Path], pattern: str) -> list[Candidate | Refusal]:
    """Look in every folder once; the result is in folder, then name order.

    Args:
        directories: Absolute folders.
        pattern: A glob for file names; "" takes every executable file.
    """
    found: list[Candidate | Refusal] = []
    for directory in directories:
        problem = _unsafe_folder(directory)
        if problem is not None:
            found.append(problem)
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            found.append(Refusal(str(directory), ErrorCode.CONFIG_FILE_UNREADABLE, f"{directory}: {exc.strerror}"))
            continue
        for name in names:
            if name.startswith("."):  # hidden: editors' and copiers' temporary files
                continue
            item = _look_at(directory, directory / name, pattern)
            if item is not None:
                found.append(item)
    return found


def _unsafe_folder(folder: Path) -> Refusal | None:
    try:
        info = os.stat(folder)
    except OSError as exc:
        return Refusal(str(folder), ErrorCode.CONFIG_FILE_NOT_FOUND, f"{folder}: plugin folder: {exc.strerror}")
    if not stat.S_ISDIR(info.st_mode):
        return Refusal(str(folder), ErrorCode.CONFIG_INVALID_VALUE, f"{folder}: plugin folder: not a directory")
    if info.st_mode & stat.S_IWOTH:
        return Refusal(
            str(folder),
            ErrorCode.UNSAFE_FILE,
            f"{folder}: the plugin folder is world-writable (mode {stat.filemode(info.st_mode)}): anyone could "
            "put a plugin there; run chmod o-w",
        )
    return None


def _look_at(directory: Path, path: Path, pattern: str) -> Candidate | Refusal | None:
    try:
        info = os.stat(path)  # through a symlink: where it leads is checked below
    except OSError:
        return None  # gone since listed, or a dangling symlink
    if stat.S_ISDIR(info.st_mode):
        if not os.path.lexists(path / MANIFEST_NAME):
            return None
        return _manifest_plugin(directory, path)
    if pattern and not fnmatch.fnmatchcase(path.name, pattern):
        return None
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
        return None  # not executable (yet): a file still being copied usually is not
    return _file_plugin(directory, path)


def _file_plugin(directory: Path, path: Path) -> Candidate | Refusal:
    try:
        real = check_location(path, [directory])
        state = _fingerprint(real)
    except SecurityError as exc:
        return Refusal(str(path), exc.code, exc.message)
    name = path.name
    if not _NAME.match(name):
        return Refusal(
            str(path),
            ErrorCode.CONFIG_INVALID_NAME,
            f"{path}: a plugin found without a manifest is named after its file, and {name!r} is not a plugin "
            "name (1-128 letters, digits, '.', '_' or '-', starting with a letter or digit); rename it",
            fingerprint=state,
        )
    source = Subprocess(str(path), cwd=str(directory))
    return Candidate(name, path, source, state)


def _manifest_plugin(directory: Path, folder: Path) -> Candidate | Refusal:
    file = folder / MANIFEST_NAME
    state: Fingerprint = ()
    try:
        check_location(folder, [directory])
        _refuse_world_writable(folder)
        real_file = check_location(file, [folder])
        state = _fingerprint(real_file)
        manifest = read_manifest(real_file)
        if manifest.transport is Transport.GRPC:
            return Candidate(manifest.name, folder, Grpc(manifest.endpoint.strip()), state, manifest)
        command = folder / manifest.command
        real = check_location(command, [folder])
        state += _fingerprint(real, executable=True)
        if manifest.hash:
            verify_hash(manifest.name, command, folder, manifest.hash)
    except (ConfigError, ConfigFileError, SecurityError) as exc:
        return Refusal(str(folder), exc.code, exc.message, fingerprint=state)
    options = SubprocessOptions(prepare_launch=hash_guard(manifest.name, command, folder, manifest.hash))
    source = Subprocess(str(command), manifest.args, dict(manifest.env), str(folder), options)
    return Candidate(manifest.name, folder, source, state, manifest)


def _refuse_world_writable(folder: Path) -> None:
    mode = os.stat(folder).st_mode
    if mode & stat.S_IWOTH:
        raise SecurityError(
            f"{folder} is world-writable (mode {stat.filemode(mode)}); run chmod o-w", code=ErrorCode.UNSAFE_FILE
        )


def _fingerprint(real: Path, *, executable: bool = False) -> Fingerprint:
    """Check the file as a launch would (`open_checked`) and return its state."""
    fd, info = open_checked(real)
    os.close(fd)
    if executable and not info.st_mode & 0o111:
        raise SecurityError(f"{real} is not executable (chmod +x)", code=ErrorCode.UNSAFE_FILE)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def verify_hash(name: str, file: Path, folder: Path, digest: str) -> None:
    """Check that `file` (inside `folder`) hashes to the sha256 `digest`, through one open
    descriptor.

    Raises:
        SecurityError: 1802 when it does not (details say `by: discovery`), or the location
            and file checks' codes (1808-1810).
    """
    real = check_location(file, [folder])
    fd, _ = open_checked(real)
    try:
        actual = digest_fd(fd, "sha256")
    finally:
        os.close(fd)
    if actual != digest:
        raise SecurityError(
            f"plugin {name!r}: {file} hashes to sha256:{actual[:16]}..., its manifest pins sha256:{digest[:16]}...",
            code=ErrorCode.HASH_MISMATCH,
            plugin=name,
            details={"by": "discovery", "path": str(file), "expected": digest, "actual": actual},
        )


def hash_guard(name: str, file: Path, folder: Path, digest: str) -> LaunchHook | None:
    """A launch hook that checks the manifest's hash before every start (None: no hash)."""
    if not digest:
        return None

    async def verify(argv: list[str]) -> list[str]:
        try:
            await asyncio.to_thread(verify_hash, name, file, folder, digest)
        except PluginError as exc:
            exc.details = {**exc.details, "by": "discovery"}
            raise
        return argv

    return verify
