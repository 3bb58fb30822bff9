"""`reload_config()`: all-or-nothing validation, the diff by name, in-place policy changes,
coalescing, and reloads under load. Real subprocess plugins that report their version."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import plugwire
from plugwire import AsyncPluginManager
from plugwire.errors import ErrorCode
from tests.support.plugins.versioned_plugin import Req, Resp
from tests.support.procguard import PLUGINS, plugin_env, python_plugin

Manager = AsyncPluginManager[Req, Resp]


def plugin(name: str, version: str = "1", **fields: Any) -> dict[str, Any]:
    """One plugin of a config file, running versioned_plugin.py at `version`."""
    return {
        "name": name,
        "executable": sys.executable,
        "args": [str(PLUGINS / "versioned_plugin.py"), version],
        "env": plugin_env(),
        **fields,
    }


def write(path: Path, *plugins: dict[str, Any], **extra: Any) -> Path:
    path.write_text(yaml.safe_dump({"plugins": list(plugins), **extra}))
    return path


async def pids(manager: Manager, *names: str) -> dict[str, tuple[int, str]]:
    answers = {name: await manager.execute(name, Req()) for name in names}
    return {name: (answer.pid, answer.version) for name, answer in answers.items()}


async def test_a_reload_adds_removes_replaces_and_updates_by_name(tmp_path: Path) -> None:
    config = write(tmp_path / "plugins.yaml", plugin("keep"), plugin("tune"), plugin("upgrade"), plugin("drop"))
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        await manager.register(python_plugin("versioned_plugin.py", "7"), name="in-code")
        before = await pids(manager, "keep", "tune", "upgrade", "drop", "in-code")
        write(
            config,
            plugin("keep"),
            plugin("tune", retry={"max_retries": 1}, connection={"request_timeout": "5s"}),
            plugin("upgrade", "2"),
            plugin("new", "3"),
        )

        report = await manager.reload_config(config)

        assert set(report.added) == {"new"}
        assert set(report.removed) == {"drop"}
        assert report.replaced == {"upgrade": "args"}
        assert report.updated == {"tune": "retry, connection.request_timeout"}
        assert set(report.unchanged) == {"keep"}
        assert report.failed == {}
        assert report.ok
        assert report.source == str(config)
        after = await pids(manager, "keep", "tune", "upgrade", "new", "in-code")
        assert after["keep"] == before["keep"]
        assert after["tune"] == before["tune"]  # same process: applied in place
        assert after["in-code"] == before["in-code"]  # registered in code: not the config's
        assert after["upgrade"][1] == "2"
        assert after["new"][1] == "3"
        assert "drop" not in manager
        assert manager._entries["tune"].config.retry.max_retries == 1
        assert manager._entries["tune"].attempt_timeout == 5.0
        assert [p.name for p in manager.config.plugins] == ["keep", "tune", "upgrade", "new"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('plugins:\n  - name: a\n    executable: x\n    retry:\n      max_retries: "many"\n', "retry.max_retries"),
        ("plugins:\n  - name: a\n    executable: x\n   bad: [\n", "line 4"),
        ("plugins:\n  - name: a\n    executable: x\n  - name: a\n    executable: x\n", "duplicate"),
    ],
)
async def test_an_invalid_file_changes_nothing_and_says_where(tmp_path: Path, content: str, words: str) -> None:
    config = write(tmp_path / "plugins.yaml", plugin("a"), plugin("b"))
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        before = await pids(manager, "a", "b")
        running = {name: manager._entries[name].config for name in ("a", "b")}
        config.write_text(content)
        with pytest.raises(plugwire.PluginError) as caught:
            await manager.reload_config(config)
        assert str(config) in str(caught.value)
        assert words in str(caught.value)
        assert await pids(manager, "a", "b") == before
        assert {name: manager._entries[name].config for name in ("a", "b")} == running
        with pytest.raises(plugwire.errors.ConfigFileError) as missing:
            await manager.reload_config(tmp_path / "missing.yaml")
        assert missing.value.code == ErrorCode.CONFIG_FILE_NOT_FOUND


async def test_a_policy_only_change_keeps_the_processes_the_breaker_and_the_tokens(tmp_path: Path) -> None:
    limited = {"enabled": True, "requests_per_second": 1000, "burst_size": 50}
    config = write(tmp_path / "plugins.yaml", plugin("a", rate_limit=limited))
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        before = await pids(manager, "a")
        entry = manager._entries["a"]
        breaker, limiter = entry.breaker, entry.pipeline.limiter if entry.pipeline else None
        write(config, plugin("a", rate_limit=limited, health_check={"interval": "1s"}, retry={"max_retries": 0}))
        report = await manager.reload_config(config)
        assert report.updated == {"a": "retry, health_check"}
        assert await pids(manager, "a") == before
        assert manager._entries["a"] is entry
        assert entry.breaker is breaker  # its settings did not change: its state carries on
        assert entry.pipeline is not None
        assert entry.pipeline.limiter is limiter
        assert entry.monitor.config.interval == 1.0
        # A changed breaker is new (its settings differ), still the same process.
        write(config, plugin("a", rate_limit=limited, circuit_breaker={"failure_threshold": 9}))
        report = await manager.reload_config(config)
        assert "circuit_breaker" in report.updated["a"]
        assert entry.breaker is not breaker
        assert entry.breaker is not None
        assert entry.breaker.config.failure_threshold == 9
        assert await pids(manager, "a") == before


async def test_a_removed_plugins_calls_in_flight_complete(tmp_path: Path) -> None:
    config = write(tmp_path / "plugins.yaml", plugin("a"), plugin("b"))
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        running = asyncio.create_task(manager.execute("a", Req(op="sleep", text="0.5")))
        await asyncio.sleep(0)  # the call is sent (execute ran to its first await)
        write(config, plugin("b"))
        report = await manager.reload_config(config)
        assert set(report.removed) == {"a"}
        assert (await running).version == "1"
        with pytest.raises(plugwire.PluginNotFoundError):
            await manager.execute("a", Req())


async def test_enabling_and_disabling_in_the_config(tmp_path: Path) -> None:
    config = write(tmp_path / "plugins.yaml", plugin("a"), plugin("b", enabled=False))
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        write(config, plugin("a", enabled=False), plugin("b"))
        report = await manager.reload_config(config)
        assert report.removed == {"a": "disabled in the config"}
        assert report.added == {"b": "enabled in the config"}
        with pytest.raises(plugwire.errors.PluginDisabledError):
            await manager.execute("a", Req())
        assert (await manager.execute("b", Req())).version == "1"


async def test_a_failed_replacement_is_reported_and_the_rest_applied(tmp_path: Path) -> None:
    config = write(tmp_path / "plugins.yaml", plugin("a"), plugin("b"))
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        before = await pids(manager, "a")
        broken = plugin("a", "2")
        broken["args"].append("crash")
        write(config, broken, plugin("b", "2"))
        report = await manager.reload_config(config)
        assert "1210" in report.failed["a"]
        assert "missing library" in report.failed["a"]
        assert set(report.replaced) == {"b"}
        assert not report.ok
        assert await pids(manager, "a") == before


async def test_reloads_asked_for_meanwhile_coalesce_to_the_latest(tmp_path: Path) -> None:
    files = [write(tmp_path / f"c{n}.yaml", plugin("a", retry={"max_retries": n})) for n in range(6)]
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(files[0])) as manager:
        reports = await asyncio.gather(*(manager.reload_config(f) for f in files[1:]))
        assert manager._entries["a"].config.retry.max_retries == 5
        assert manager._reloader.count < 5  # fewer reloads ran than were asked for
        assert reports[-1].source == str(files[-1])
        assert all(r.source == str(files[-1]) for r in reports[1:])


async def test_a_reload_before_start_sets_what_start_registers(tmp_path: Path) -> None:
    config = write(tmp_path / "plugins.yaml", plugin("a", "4"))
    manager = Manager(Req, Resp)
    report = await manager.reload_config(config)
    assert set(report.added) == {"a"}
    async with manager:
        assert (await manager.execute("a", Req())).version == "4"


@pytest.mark.load
@pytest.mark.timeout(300)  # 20 plugin starts among the 100 reloads; slow on a busy machine
async def test_100_reloads_under_load_fail_no_call(tmp_path: Path) -> None:
    """16 callers on 2 plugins while the config is reloaded 100 times: policy changes in
    place, and every 10th a new version (a replacement)."""
    config = write(tmp_path / "plugins.yaml", plugin("a"), plugin("b"))
    failures: list[BaseException] = []
    answers: list[Resp] = []
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        stop = asyncio.Event()

        async def caller(n: int) -> None:
            name = "ab"[n % 2]
            while not stop.is_set():
                try:
                    answers.append(await manager.execute(name, Req()))
                except plugwire.PluginError as exc:
                    failures.append(exc)
                await asyncio.sleep(0.01)

        callers = [asyncio.create_task(caller(n)) for n in range(16)]
        kinds: dict[str, int] = {}
        for n in range(100):
            version = str(1 + n // 10)
            write(config, plugin("a", version, retry={"max_retries": n % 3}), plugin("b", version))
            report = await manager.reload_config(config)
            assert report.ok, report.failed
            for kind in ("updated", "replaced", "unchanged"):
                kinds[kind] = kinds.get(kind, 0) + len(getattr(report, kind))
        stop.set()
        await asyncio.gather(*callers)
    assert failures == []
    assert kinds["replaced"] == 18  # 9 version changes x 2 plugins
    assert kinds["updated"] >= 50
    versions_by_pid: dict[int, set[str]] = {}
    for answer in answers:
        versions_by_pid.setdefault(answer.pid, set()).add(answer.version)
    assert all(len(v) == 1 for v in versions_by_pid.values())


async def test_a_config_plugin_replaced_in_code_is_still_the_configs(tmp_path: Path) -> None:
    """The file stays the source of truth of the plugins it lists: a reload that changes one
    starts what the file says, not the source a `replace()` in code last used."""
    config = write(tmp_path / "plugins.yaml", plugin("a", "1"))
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        await manager.replace("a", python_plugin("versioned_plugin.py", "2"))
        assert (await manager.execute("a", Req())).version == "2"
        write(config, plugin("a", "3"))
        report = await manager.reload_config(config)
        assert set(report.replaced) == {"a"}
        assert (await manager.execute("a", Req())).version == "3"


async def test_reloads_are_counted_in_the_metrics_refused_ones_too(tmp_path: Path) -> None:
    config = write(tmp_path / "plugins.yaml", plugin("a"), metrics={"enabled": True})
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        write(config, plugin("a", retry={"max_retries": 1}), metrics={"enabled": True})
        await manager.reload_config(config)
        config.write_text("plugins: [")
        with pytest.raises(plugwire.PluginError):
            await manager.reload_config(config)
        metrics = manager.get_metrics()
    assert (metrics.config_reloads, metrics.config_reload_failures) == (2, 1)
