"""Hash algorithms the whitelist accepts, and streaming digests of open files."""

from __future__ import annotations

import hashlib
import os
import string
from typing import Any

from .._errors import ErrorCode, SecurityError

__all__ = [
    "ALGORITHMS",
    "CHUNK_SIZE",
    "check_algorithm",
    "check_hex_digest",
    "digest_fd",
    "digest_file",
    "new_hash",
]

#: Hex digest length of each accepted algorithm (blake2b at its default 64-byte size).
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128, "blake2b": 128}

#: Read size for hashing: large enough that the per-read overhead of Python vanishes next to
#: the hash itself (1 MiB keeps a 50 MB file within a few percent of `sha256sum`).
CHUNK_SIZE = 1 << 20

_HEX = frozenset(string.hexdigits.lower())


def check_algorithm(name: str, *, where: str = "") -> str:
    """Return the canonical algorithm name, or raise 1805 naming `where`."""
    canonical = name.strip().lower()
    if canonical not in ALGORITHMS:
        prefix = f"{where}: " if where else ""
        raise SecurityError(
            f"{prefix}unknown hash algorithm {name!r}; use one of {', '.join(ALGORITHMS)}",
            code=ErrorCode.UNKNOWN_HASH_ALGORITHM,
        )
    return canonical


def check_hex_digest(algorithm: str, digest: str, *, where: str = "") -> str:
    """Return `digest` lower-cased if it is hex of the algorithm's length, else raise 1806."""
    value = digest.strip().lower()
    expected = ALGORITHMS[algorithm]
    if len(value) != expected or not set(value) <= _HEX:
        prefix = f"{where}: " if where else ""
        raise SecurityError(
            f"{prefix}a {algorithm} hash is {expected} hexadecimal characters, got {len(value)} ({value[:16]!r}...)",
            code=ErrorCode.BAD_HASH_LENGTH,
        )
    return value


def new_hash(algorithm: str) -> Any:
    """A fresh hashlib object for an accepted algorithm."""
    return hashlib.new(check_algorithm(algorithm))


def digest_fd(fd: int, algorithm: str) -> str:
    """Hash everything readable from an open file descriptor, from its start.

    The descriptor is read with `os.readv` into one reused buffer, so a large file costs one
    allocation; the descriptor stays open and its offset is left at the end.

    Args:
        fd: An open, readable, seekable descriptor.
        algorithm: One of `ALGORITHMS`.

    Returns:
        The hex digest.
    """
    hasher = new_hash(algorithm)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        count = os.readv(fd, [buffer])
        if not count:
            break
        hasher.update(view[:count])
    view.release()
    digest: str = hasher.hexdigest()
    return digest


def digest_file(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hash a file by path (follows symlinks; used by the CLI and tests, not by launch)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return digest_fd(fd, algorithm)
    finally:
        os.close(fd)
