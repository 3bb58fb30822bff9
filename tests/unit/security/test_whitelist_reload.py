"""Whitelist reloads: parsed off the event loop, from one read, audited once per change."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from plugwire import AsyncPluginManager, ManagerConfig, SecurityAuditConfig, SecurityConfig, SecurityPolicy
from plugwire._config import MAX_FILE_BYTES
from plugwire._security import AuditEvent, SecurityEngine, load_whitelist
from plugwire.errors import SecurityError

HEX = "c" * 64


def whitelist_yaml(*names: str, extra: str = "") -> str:
    entries = "".join(f"  - {{name: {n}, path: plugins/{n}, hash: 'sha256:{HEX}'}}\n" for n in names)
    return f"plugins:\n{entries}{extra}"


def security(tmp_path: Path, whitelist: Path) -> SecurityConfig:
    return SecurityConfig(
        enabled=True,
        policy=SecurityPolicy.STRICT,
        whitelist_file=str(whitelist),
        audit_config=SecurityAuditConfig(enabled=True, audit_file=str(tmp_path / "audit.db")),
    )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[SecurityEngine]:
    path = tmp_path / "plugins.yaml"
    path.write_text(whitelist_yaml("a"))
    engine = SecurityEngine.from_config(security(tmp_path, path))
    yield engine
    await engine.aclose()


def rejected(engine: SecurityEngine) -> list[Any]:
    assert engine.audit is not None
    engine.audit.flush()
    return list(engine.audit.query(event=AuditEvent.WHITELIST_REJECTED))


def test_a_reload_the_parser_chokes_on_keeps_the_old_whitelist_and_writes_its_rejected_row(
    tmp_path: Path, engine: SecurityEngine
) -> None:
    original = engine.whitelist
    (tmp_path / "plugins.yaml").write_text(
        f"plugins:\n  - name: b\n    path: plugins/b\n    hash: sha256:{HEX}\n    metadata: {{released: 2024-02-30}}\n"
    )
    assert engine.reload() is False
    assert engine.whitelist is original
    (row,) = rejected(engine)
    assert row.fields["code"] == 1804
    assert "day is out of range" in row.fields["error"]


def test_the_same_broken_bytes_are_rejected_once_and_each_new_version_once_more(
    tmp_path: Path, engine: SecurityEngine
) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text("plugins: [{name: a, path: plugins/a, hash: 'sha256:short'}]\n")
    engine.reload()
    path.write_text("plugins: [{name: a, path: plugins/a, hash: 'sha256:short'}]\n")  # the same bytes again
    engine.reload()
    assert len(rejected(engine)) == 1
    path.write_text("plugins: [{name: a, path: plugins/a, hash: 'sha256:shorter'}]\n")
    engine.reload()
    assert len(rejected(engine)) == 2
    path.unlink()
    engine.reload()
    engine.reload()
    assert len(rejected(engine)) == 3  # a missing file is one more rejection, not one per event


@pytest.fixture
def parse_threads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each YAML parse: whether it ran on a thread with a running event loop."""
    seen: list[bool] = []
    real = yaml.load

    def spying(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            seen.append(False)
        else:
            seen.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(yaml, "load", spying)
    return seen


async def test_a_watched_reload_parses_off_the_event_loop(
    tmp_path: Path, engine: SecurityEngine, parse_threads: list[bool]
) -> None:
    (tmp_path / "plugins.yaml").write_text(whitelist_yaml("a", "b"))
    await engine._on_file_event()
    assert [entry.name for entry in engine.whitelist] == ["a", "b"]
    assert parse_threads == [False]


async def test_a_manager_reads_its_whitelist_and_config_file_off_the_event_loop(
    tmp_path: Path, parse_threads: list[bool]
) -> None:
    whitelist = tmp_path / "plugins.yaml"
    whitelist.write_text(whitelist_yaml("a"))
    config_file = tmp_path / "app.yaml"
    config_file.write_text("log_level: info\n")
    config = ManagerConfig(security=security(tmp_path, whitelist))
    async with AsyncPluginManager(str, str, config) as manager:
        await manager.load_config(config_file)
        assert manager.security is not None
        assert [entry.name for entry in manager.security.whitelist] == ["a"]
    assert parse_threads == [False, False]


def test_a_whitelist_rewritten_during_its_parse_is_loaded_again(
    tmp_path: Path, engine: SecurityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plugins.yaml"
    real = yaml.load
    rewrites = [whitelist_yaml("a", "c")]

    def rewritten_meanwhile(*args: Any, **kwargs: Any) -> Any:
        data = real(*args, **kwargs)
        if rewrites:
            path.write_text(rewrites.pop())  # a new version lands while the old one is parsed
        return data

    monkeypatch.setattr(yaml, "load", rewritten_meanwhile)
    path.write_text(whitelist_yaml("a", "b"))
    assert engine.reload() is True
    assert [entry.name for entry in engine.whitelist] == ["a", "b"]
    assert engine.whitelist.fingerprint == hashlib.sha256(whitelist_yaml("a", "b").encode()).hexdigest()
    assert engine.reload() is True
    assert [entry.name for entry in engine.whitelist] == ["a", "c"]


def test_a_whitelist_of_ten_thousand_entries_fits_the_bounds(tmp_path: Path) -> None:
    entries = [
        {
            "name": f"plugin-{i:05d}-service",
            "path": f"./plugins/plugin-{i:05d}-service/bin/plugin-{i:05d}",
            "hash": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(),
            "algorithm": "sha256",
            "enabled": True,
            "metadata": {"version": f"1.2.{i}", "owner": f"team-{i % 50}@example.com", "released": "2024-02-01"},
        }
        for i in range(10_000)
    ]
    path = tmp_path / "plugins.json"
    path.write_bytes(msgspec.json.encode({"version": "1.0", "plugins": entries}))
    # the same entries written as YAML, one key a line, are the size that matters
    as_yaml = "".join(
        f"  - name: {e['name']}\n    path: {e['path']}\n    hash: {e['hash']}\n    algorithm: sha256\n"
        f"    enabled: true\n    metadata: {json.dumps(e['metadata'])}\n"
        for e in entries
    )
    assert len(as_yaml.encode()) < MAX_FILE_BYTES * 0.8
    assert len(load_whitelist(path)) == 10_000


def test_an_unknown_whitelist_key_suggests_the_closest_valid_one(tmp_path: Path) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(f"plugins:\n  - {{name: auth, path: plugins/auth, hsh: 'sha256:{HEX}'}}\n")
    with pytest.raises(SecurityError) as caught:
        load_whitelist(path)
    assert caught.value.code == 1804
    assert caught.value.message.endswith("plugins[0] ('auth'): unknown key 'hsh'; did you mean 'hash'?")
    path.write_text("versoin: '1.0'\n")
    with pytest.raises(SecurityError, match="unknown key 'versoin'; did you mean 'version'"):
        load_whitelist(path)
