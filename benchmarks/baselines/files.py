"""Hashing a big file: `sha256sum` (the floor a whitelist check is judged against) and hashlib."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from .._model import Env, Op, Side

__all__ = ["HASHLIB_FILE", "SHA256SUM", "big_file", "hashlib_file", "sha256sum"]

FULL_SIZE = 50 * 10**6
QUICK_SIZE = 4 * 2**20


def big_file(env: Env) -> Path:
    """A 50 MB file of fixed pseudo-random bytes in the run's scratch folder (4 MiB in quick mode)."""
    size = QUICK_SIZE if env.quick else FULL_SIZE
    path = env.workdir / f"plugin-{size}.bin"
    if not path.exists():
        block = hashlib.shake_256(b"plugwire benchmark").digest(2**20)
        with path.open("wb") as out:
            for offset in range(0, size, len(block)):
                out.write(block[: min(len(block), size - offset)])
    return path


def _hashlib_hex(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


@asynccontextmanager
async def sha256sum(env: Env) -> AsyncIterator[Op]:
    """`sha256sum FILE` as a child process, output read."""
    path = big_file(env)
    argv = ["sha256sum", str(path)]

    def run() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.PIPE)

    found = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout.split()[0]  # noqa: ASYNC221 - setup, nothing else runs
    if found != _hashlib_hex(path):
        raise RuntimeError("sha256sum and hashlib disagree about the test file")
    yield run


@asynccontextmanager
async def hashlib_file(env: Env) -> AsyncIterator[Op]:
    """`hashlib.file_digest(f, "sha256")` in the host process."""
    path = big_file(env)

    def run() -> None:
        _hashlib_hex(path)

    yield run


SHA256SUM = Side("sha256sum", sha256sum)
HASHLIB_FILE = Side("hashlib.file_digest", hashlib_file)
