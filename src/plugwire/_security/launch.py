"""Verified launch: check and hash an executable through one open descriptor, then run a
private copy of exactly the bytes that were hashed.

There is no window between check and exec: the file is opened once (never through a symlink
as its last component), checked with `fstat` on that descriptor, hashed from it, and copied
from it into a private 0700 folder. Replacing or rewriting the original afterwards changes
nothing about what runs.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._errors import ErrorCode, SecurityError
from .hashing import CHUNK_SIZE, digest_fd, new_hash
from .whitelist import has_parent_segment

__all__ = ["ExecCache", "FileFacts", "check_location", "inspect_file", "locate_in_argv", "open_checked"]

# O_NONBLOCK: opening a FIFO must not hang waiting for a writer (it is refused after fstat).
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symlink",
}


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What was verified about an executable.

    Attributes:
        path: The real path that was opened (symlinks resolved).
        algorithm: The hash algorithm used.
        digest: The hex digest of the bytes read through the open descriptor.
        size: Their length.
        interpreter: The `#!` line of a script (without `#!`), else None.
    """

    path: Path
    algorithm: str
    digest: str
    size: int
    interpreter: str | None


def check_location(path: str | os.PathLike[str], roots: Sequence[Path]) -> Path:
    """Refuse `..` segments, and symlinks that lead outside `roots`; return the real path.

    Raises:
        SecurityError: 1808 for a `..` segment, 1810 for a symlink escaping the roots.
    """
    text = os.fspath(path)
    if has_parent_segment(text):
        raise SecurityError(f"{text!r} has a '..' segment", code=ErrorCode.PATH_TRAVERSAL)
    absolute = Path(os.path.abspath(text))
    real = Path(os.path.realpath(absolute))
    if real != absolute:
        real_roots = [Path(os.path.realpath(root)) for root in roots]
        if not any(real.is_relative_to(root) for root in real_roots):
            allowed = ", ".join(str(root) for root in real_roots) or "(none)"
            raise SecurityError(
                f"{text} is a symlink to {real}, outside the allowed plugin folders ({allowed})",
                code=ErrorCode.SYMLINK_ESCAPE,
            )
    return real


def open_checked(path: Path) -> tuple[int, os.stat_result]:
    """Open `path` once, read-only, not through a symlink, and check it by `fstat`.

    Requires a regular file, not group- or world-writable, owned by the host's user or root.

    Returns:
        The open descriptor (the caller closes it) and its `fstat`.

    Raises:
        SecurityError: 1809 naming what is unsafe.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        reason = "it became a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise SecurityError(f"{path}: cannot open safely: {reason}", code=ErrorCode.UNSAFE_FILE) from exc
    try:
        info = os.fstat(fd)
        kind = stat.S_IFMT(info.st_mode)
        if kind != stat.S_IFREG:
            raise SecurityError(
                f"{path} is {_KINDS.get(kind, 'not a regular file')}, not a regular file", code=ErrorCode.UNSAFE_FILE
            )
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise SecurityError(
                f"{path} is group- or world-writable (mode {stat.filemode(info.st_mode)}); run chmod go-w",
                code=ErrorCode.UNSAFE_FILE,
            )
        if info.st_uid not in {os.geteuid(), 0}:
            raise SecurityError(
                f"{path} is owned by uid {info.st_uid}, not by the host's user ({os.geteuid()}) or root",
                code=ErrorCode.UNSAFE_FILE,
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def inspect_file(path: str | os.PathLike[str], algorithm: str, roots: Sequence[Path]) -> FileFacts:
    """Check the location and the file, and hash it through one descriptor (no copy)."""
    real = check_location(path, roots)
    fd, info = open_checked(real)
    try:
        return FileFacts(real, algorithm, digest_fd(fd, algorithm), info.st_size, shebang(fd))
    finally:
        os.close(fd)


def shebang(fd: int) -> str | None:
    """The interpreter line of a script (`#!/usr/bin/env python3` → "/usr/bin/env python3")."""
    head = os.pread(fd, 512, 0)
    if not head.startswith(b"#!"):
        return None
    return head[2:].split(b"\n", 1)[0].strip().decode("utf-8", "replace")


def locate_in_argv(argv: Sequence[str], target: Path, cwd: str | os.PathLike[str] | None) -> int | None:
    """Where `target` is in `argv`: the program (0), or the first non-option argument after
    it (a script run by an interpreter, `python -u plugin.py`); None if in neither place."""
    base = os.fspath(cwd) if cwd else os.getcwd()
    wanted = os.path.realpath(target)
    for index, arg in enumerate(argv):
        if index > 0 and arg.startswith("-"):
            continue
        if index == 0 and os.sep not in arg:
            found = shutil.which(arg)
            candidate = found or os.path.join(base, arg)
        else:
            candidate = os.path.join(base, arg)
        if os.path.realpath(candidate) == wanted:
            return index
        if index > 0:
            return None
    return None


class ExecCache:
    """A private 0700 folder of verified copies, each named by its digest.

    Args:
        folder: Where to keep copies; a new private temporary folder by default (removed by
            `close()`). An existing folder is made 0700 and must be owned by the host's user.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self._owned = folder is None
        if folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="plugwire-exec-"))
        else:
            self.folder = Path(os.path.abspath(folder))
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.folder)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                raise SecurityError(
                    f"{self.folder}: the launch folder must be a directory owned by the host's user",
                    code=ErrorCode.UNSAFE_FILE,
                )
            os.chmod(self.folder, 0o700)

    def materialize(self, name: str, fd: int, algorithm: str, digest: str) -> Path:
        """A private executable copy of the bytes readable from `fd`, whose hash is `digest`.

        The copy is hashed as it is written; if the source changed since `digest` was taken
        (rewritten in place), the copy is discarded.

        Raises:
            SecurityError: 1802 when the bytes changed while being copied.
        """
        target = self.folder / f"{name}-{algorithm}-{digest[:40]}"
        if os.path.isfile(target) and not os.path.islink(target):
            return target
        temp = self.folder / f".{name}.{secrets.token_hex(8)}"
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o700)
        try:
            hasher = new_hash(algorithm)
            buffer = bytearray(CHUNK_SIZE)
            view = memoryview(buffer)
            os.lseek(fd, 0, os.SEEK_SET)
            while count := os.readv(fd, [buffer]):
                chunk = view[:count]
                hasher.update(chunk)
                written = 0
                while written < count:
                    written += os.write(out, chunk[written:])
            view.release()
            os.fchmod(out, 0o500)
        except BaseException:
            os.close(out)
            temp.unlink(missing_ok=True)
            raise
        os.close(out)
        if hasher.hexdigest() != digest:
            temp.unlink(missing_ok=True)
            raise SecurityError(
                f"plugin {name!r}: the file changed while it was being copied for launch",
                code=ErrorCode.HASH_MISMATCH,
                plugin=name,
            )
        os.replace(temp, target)
        return target

    def close(self) -> None:
        """Remove the folder if this cache created it."""
        if self._owned:
            shutil.rmtree(self.folder, ignore_errors=True)
