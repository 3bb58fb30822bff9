"""Helpers for the security tests: real plugin files on disk and whitelists that pin them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_plugin(path: Path, output: str, marker: Path | None = None) -> Path:
    """A tiny shell-script plugin: it creates `marker` (if given) and prints `output`."""
    lines = ["#!/bin/sh"]
    if marker is not None:
        lines.append(f"touch '{marker}'")
    lines.append(f"echo '{output}'")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def write_whitelist(path: Path, entries: list[dict[str, object]]) -> Path:
    """A JSON whitelist (JSON is also valid YAML, so any suffix works)."""
    path.write_text(json.dumps({"version": "1.0", "plugins": entries}))
    return path


def entry_for(name: str, plugin: Path, **extra: object) -> dict[str, object]:
    return {"name": name, "path": str(plugin), "hash": f"sha256:{sha256_of(plugin)}", **extra}


@contextlib.contextmanager
def raw_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain autocommit connection, as someone editing the file by hand opens it; closed on exit."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        yield db
    finally:
        db.close()
