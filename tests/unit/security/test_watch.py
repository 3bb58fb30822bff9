"""Hot reload of the whitelist: rename, ConfigMap-style symlink swaps, broken files kept out."""

from __future__ import annotations

import asyncio
import json
import logging
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

    from plugwire._security import WhitelistWatcher
    from plugwire.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "watchfiles", None)

    async def nothing() -> None:
        return None

    with pytest.raises(MissingDependencyError) as caught:
        WhitelistWatcher(tmp_path / "w.yaml", nothing, use_watchfiles=True)
    assert "plugwire[watch]" in str(caught.value)
    assert WhitelistWatcher(tmp_path / "w.yaml", nothing).backend == "poll"


class Refusals(logging.Handler):
    """Collects the engine's "reload refused" log lines as they are emitted."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        if "reload refused" in record.getMessage():
            self.queue.put_nowait(record.getMessage())


@pytest.mark.parametrize("use_watchfiles", BACKENDS)
async def test_writes_beside_a_broken_whitelist_do_not_reload_it_again(
    tmp_path: Path, use_watchfiles: bool, cleanup: list[SecurityEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(whitelist_text("a"))
    refusals = Refusals()
    logger = logging.getLogger(f"plugwire.tests.watch.{use_watchfiles}")
    logger.addHandler(refusals)
    config = SecurityConfig(
        enabled=True,
        policy=SecurityPolicy.STRICT,
        whitelist_file=str(path),
        audit_config=SecurityAuditConfig(enabled=True, audit_file=str(tmp_path / "audit.db")),  # beside it
    )
    engine = SecurityEngine.from_config(config, logger=logger)
    cleanup.append(engine)
    await engine.start_watching(use_watchfiles=use_watchfiles, poll_interval=0.05)
    watcher = engine._watcher
    assert watcher is not None
    assert engine.audit is not None
    events: set[str] = set()
    concerns = watcher.concerns

    def recording(changed: str | os.PathLike[str]) -> bool:
        events.add(os.fspath(changed))
        return concerns(changed)

    monkeypatch.setattr(watcher, "concerns", recording)

    async def neighbours_written(version: int) -> None:
        """Write the audit log and other files beside the whitelist; return once the watcher
        has handled their events (the poller: two whole polls after the last write)."""
        for index in range(3):
            engine.audit.flush()  # type: ignore[union-attr]
            neighbour = tmp_path / f"neighbour-{version}-{index}.log"
            neighbour.write_text("written beside the whitelist")
            async with asyncio.timeout(5):
                if watcher.backend == "poll":
                    await watcher.wait_checks(watcher.checks + 2)
                while watcher.backend != "poll" and str(neighbour) not in events:
                    await watcher.wait_checks(watcher.checks + 1)

    for version, broken in enumerate(["plugins: [{name: a, hash: 'sha256:short'}]", "plugins: 7"]):
        replace_by_rename(path, broken)
        async with asyncio.timeout(5):
            await refusals.queue.get()
        await neighbours_written(version)
        assert refusals.queue.empty(), "a write beside the whitelist reloaded it again"
        engine.audit.flush()
        assert len(engine.audit.query(event=AuditEvent.WHITELIST_REJECTED)) == version + 1


def test_the_watcher_counts_only_events_on_the_file_or_its_symlink(tmp_path: Path) -> None:
    from plugwire._security import WhitelistWatcher

    async def nothing() -> None:
        return None

    mount = tmp_path / "config"
    (mount / "..2026_01").mkdir(parents=True)
    (mount / "..2026_01" / "plugins.yaml").write_text("plugins: []")
    (mount / "..data").symlink_to("..2026_01")
    (mount / "plugins.yaml").symlink_to("..data/plugins.yaml")
    watcher = WhitelistWatcher(mount / "plugins.yaml", nothing, use_watchfiles=False)
    assert watcher.concerns(mount / "plugins.yaml")
    assert watcher.concerns(mount / "..data")
    assert not watcher.concerns(mount / "audit.db")
    assert not watcher.concerns(mount / "audit.db-journal")
    assert not watcher.concerns(mount / ".plugins.yaml.swp")


async def test_the_poller_waits_for_a_half_written_whitelist_to_be_complete(
    tmp_path: Path, cleanup: list[SecurityEngine]
) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(whitelist_text("a"))
    engine, changes = await watching(path, tmp_path, use_watchfiles=False)
    cleanup.append(engine)
    watcher = engine._watcher
    assert watcher is not None
    assert engine.audit is not None
    await watcher.wait_checks(1)  # past the catch-up read made when the watch began
    complete = whitelist_text("a", "b")
    with path.open("w") as handle:
        handle.write(complete[: len(complete) // 2])  # an editor or a copy caught mid-write
        handle.flush()
        await watcher.wait_checks(watcher.checks + 1)  # a poll sees the half-written file
        handle.write(complete[len(complete) // 2 :])
    async with asyncio.timeout(5):
        fresh = await changes.get()
    assert [entry.name for entry in fresh] == ["a", "b"]
    engine.audit.flush()
    assert engine.audit.query(event=AuditEvent.WHITELIST_REJECTED) == []


@pytest.mark.parametrize("use_watchfiles", BACKENDS)
async def test_closing_the_watcher_lets_a_reload_finish_but_not_one_that_hangs(
    tmp_path: Path, use_watchfiles: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from plugwire._security import WhitelistWatcher

    path = tmp_path / "whitelist.json"
    path.write_text(whitelist_text("a"))
    entered = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def reload() -> None:
        entered.set()
        await release.wait()
        finished.append("reload")

    watcher = WhitelistWatcher(path, reload, use_watchfiles=use_watchfiles, poll_interval=0.05, close_timeout=0.05)
    starting = asyncio.ensure_future(watcher.start())
    await entered.wait()  # the first re-read, in the watch task
    closing = asyncio.ensure_future(watcher.aclose())
    await asyncio.sleep(0)
    release.set()  # it finishes: aclose waited for it instead of cancelling it
    await closing
    assert finished == ["reload"]
    await starting
    assert watcher._tasks.tasks() == []

    stuck = asyncio.Event()

    async def hung_reload() -> None:
        stuck.set()
        await asyncio.Event().wait()

    hang = WhitelistWatcher(path, hung_reload, use_watchfiles=use_watchfiles, close_timeout=0.05)
    starting = asyncio.ensure_future(hang.start())
    await stuck.wait()
    with caplog.at_level(logging.WARNING, logger="plugwire.tasks"):
        await hang.aclose()  # a handler that never returns is cancelled, with a warning
    assert [r.getMessage() for r in caplog.records] == [
        "plugwire-watch-whitelist.json: task 'watch' still running 0.05s after close began; cancelling it"
    ]
    assert hang._tasks.tasks() == []
    starting.cancel()
    await asyncio.gather(starting, return_exceptions=True)
