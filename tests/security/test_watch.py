"""Hot reload of the whitelist: rename, ConfigMap-style symlink swaps, broken files kept out."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugwire import SecurityAuditConfig, SecurityConfig, SecurityPolicy
from plugwire._security import AuditEvent, SecurityEngine, Whitelist, watchfiles_available

HEX = "c" * 64


def whitelist_text(*names: str) -> str:
    return json.dumps({"version": "1.0", "plugins": [{"name": n, "path": f"plugins/{n}", "hash": HEX} for n in names]})


def replace_by_rename(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    os.replace(temp, path)


BACKENDS = [
    pytest.param(True, id="watchfiles", marks=pytest.mark.skipif(not watchfiles_available(), reason="no watchfiles")),
    pytest.param(False, id="polling"),
]


async def watching(path: Path, tmp_path: Path, use_watchfiles: bool) -> tuple[SecurityEngine, asyncio.Queue[Whitelist]]:
    config = SecurityConfig(
        enabled=True,
        policy=SecurityPolicy.STRICT,
        whitelist_file=str(path),
        watch_config=True,
        audit_config=SecurityAuditConfig(enabled=True, audit_file=str(tmp_path / "audit.db")),
    )
    engine = SecurityEngine.from_config(config)
    changes: asyncio.Queue[Whitelist] = asyncio.Queue()
    engine.add_listener(changes.put_nowait)
    await engine.start_watching(use_watchfiles=use_watchfiles, poll_interval=0.05)
    return engine, changes


@pytest.fixture
async def cleanup() -> AsyncIterator[list[SecurityEngine]]:
    engines: list[SecurityEngine] = []
    yield engines
    for engine in engines:
        await engine.aclose()


@pytest.mark.parametrize("use_watchfiles", BACKENDS)
async def test_a_whitelist_replaced_by_rename_is_reloaded(
    tmp_path: Path, use_watchfiles: bool, cleanup: list[SecurityEngine]
) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(whitelist_text("a"))
    engine, changes = await watching(path, tmp_path, use_watchfiles)
    cleanup.append(engine)
    replace_by_rename(path, whitelist_text("a", "b"))
    async with asyncio.timeout(5):
        fresh = await changes.get()
    assert [entry.name for entry in fresh] == ["a", "b"]
    assert engine.whitelist is fresh
    assert engine.audit is not None
    engine.audit.flush()
    (row,) = engine.audit.query(event=AuditEvent.WHITELIST_CHANGED)
    assert row.fields["added"] == ["b"]


@pytest.mark.parametrize("use_watchfiles", BACKENDS)
async def test_a_configmap_style_symlink_swap_is_reloaded(
    tmp_path: Path, use_watchfiles: bool, cleanup: list[SecurityEngine]
) -> None:
    mount = tmp_path / "config"
    (mount / "..2026_01").mkdir(parents=True)
    (mount / "..2026_01" / "plugins.yaml").write_text(whitelist_text("old"))
    (mount / "..data").symlink_to("..2026_01")
    (mount / "plugins.yaml").symlink_to("..data/plugins.yaml")
    engine, changes = await watching(mount / "plugins.yaml", tmp_path, use_watchfiles)
    cleanup.append(engine)
    assert [entry.name for entry in engine.whitelist] == ["old"]
    # what the kubelet does: write a new timestamped folder, re-point ..data atomically
    (mount / "..2026_02").mkdir()
    (mount / "..2026_02" / "plugins.yaml").write_text(whitelist_text("new"))
    (mount / "..data_tmp").symlink_to("..2026_02")
    os.replace(mount / "..data_tmp", mount / "..data")
    async with asyncio.timeout(5):
        fresh = await changes.get()
    assert [entry.name for entry in fresh] == ["new"]
    # relative paths resolve against the folder the whitelist is read through
    assert fresh.entries[0].path == mount / "plugins" / "new"


@pytest.mark.parametrize("use_watchfiles", BACKENDS)
async def test_a_broken_new_whitelist_is_kept_out_and_audited(
    tmp_path: Path, use_watchfiles: bool, cleanup: list[SecurityEngine]
) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(whitelist_text("a"))
    engine, changes = await watching(path, tmp_path, use_watchfiles)
    cleanup.append(engine)
    original = engine.whitelist
    replace_by_rename(path, "plugins: [{name: a, path: plugins/a, hash: 'sha256:short'}]")
    assert engine.audit is not None
    async with asyncio.timeout(5):
        while not engine.audit.query(event=AuditEvent.WHITELIST_REJECTED):
            await asyncio.sleep(0.02)  # no event marks a refusal except the row itself
            engine.audit.flush()
    assert engine.whitelist is original
    assert changes.empty()
    (row,) = engine.audit.query(event=AuditEvent.WHITELIST_REJECTED)
    assert row.fields["code"] == 1806
    # a good file afterwards is still picked up: the watch survived the broken one
    replace_by_rename(path, whitelist_text("a", "c"))
    async with asyncio.timeout(5):
        fresh = await changes.get()
    assert [entry.name for entry in fresh] == ["a", "c"]


async def test_requiring_watchfiles_when_it_is_missing_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from plugwire import MissingDependencyError
    from plugwire._security import WhitelistWatcher

    monkeypatch.setitem(sys.modules, "watchfiles", None)

    async def nothing() -> None:
        return None

    with pytest.raises(MissingDependencyError) as caught:
        WhitelistWatcher(tmp_path / "w.yaml", nothing, use_watchfiles=True)
    assert "plugwire[watch]" in str(caught.value)
    assert WhitelistWatcher(tmp_path / "w.yaml", nothing).backend == "poll"
