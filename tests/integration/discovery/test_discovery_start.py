"""Discovery at start: `plugwire.auto(...)` and the config's `discovery` section register the
plugins a folder holds (real subprocess plugins), and report what they refuse and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import plugwire
from plugwire import ManagerConfig
from plugwire.config import DiscoveryConfig
from plugwire.errors import ConfigError, ErrorCode
from tests.support.discovered import Req, Resp, sha256_of, write_manifest, write_plugin
from tests.support.sample_plugins import AuthPlugin


async def test_auto_registers_the_executables_matching_the_pattern(folder: Path) -> None:
    write_plugin(folder / "auth-plugin", "1.0.0")
    write_plugin(folder / "pay-plugin", "2.0.0")
    write_plugin(folder / "helper")  # does not match
    async with plugwire.auto(Req, Resp).from_directory(folder).with_pattern("*-plugin").build() as manager:
        assert sorted(manager.list_plugins()) == ["auth-plugin", "pay-plugin"]
        assert (await manager.execute("pay-plugin", Req(text="hi"))).text == "2.0.0:hi"
        report = manager.discovery.report if manager.discovery else None
        assert report is not None
        assert sorted(report.registered) == ["auth-plugin", "pay-plugin"]
        assert report.refused == ()
        assert report.added == ("auth-plugin", "pay-plugin")


async def test_a_plugin_without_manifest_is_named_after_its_file_and_described_by_its_info(folder: Path) -> None:
    write_plugin(folder / "echo", "3.1.4", name="what-it-calls-itself")
    async with plugwire.auto(Req, Resp).from_directory(folder).build() as manager:
        assert manager.get_plugin("echo").info().version == "3.1.4"
        assert manager.get_plugin("echo").info().name == "what-it-calls-itself"
        assert manager.discovery is not None
        found = manager.discovery.report.registered["echo"]
        assert found.path == str(folder / "echo")
        assert found.info.description == "a discovered plugin"
        assert found.manifest is None


async def test_a_manifest_plugin_runs_its_command_with_args_and_env_in_its_folder(folder: Path) -> None:
    run = write_plugin(folder / "shout" / "bin" / "run", "1.1.0")
    write_manifest(
        folder / "shout",
        f"name: shouter\nversion: 1.1.0\ncommand: bin/run\nargs: [--loud, data.txt]\nenv: [MODE=loud]\n"
        f"hash: sha256:{sha256_of(run)}\ncapabilities: [echo]\n",
    )
    async with plugwire.auto(Req, Resp).from_directory(folder).build() as manager:
        assert (await manager.execute("shouter", Req(op="argv"))).text == "--loud data.txt"
        assert (await manager.execute("shouter", Req(op="env", text="MODE"))).text == "loud"
        assert (await manager.execute("shouter", Req(op="cwd"))).text == str(folder / "shout")
        assert manager.discovery is not None
        found = manager.discovery.report.registered["shouter"]
        assert found.manifest is not None
        assert found.manifest.capabilities == ("echo",)


async def test_one_failing_plugin_is_reported_and_the_others_register(folder: Path) -> None:
    write_plugin(folder / "good")
    broken = folder / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    write_plugin(folder / "open", mode=0o777)
    async with plugwire.auto(Req, Resp).from_directory(folder).build() as manager:
        assert manager.discovery is not None
        report = manager.discovery.report
        assert list(report.registered) == ["good"]
        codes = {Path(r.path).name: r.code for r in report.refused}
        assert codes["open"] == ErrorCode.UNSAFE_FILE
        assert codes["broken"] // 100 == 19  # the process exited during its start
        assert (await manager.execute("good", Req(text="x"))).text == "1.0.0:x"


async def test_two_plugins_claiming_one_name_are_both_refused(folder: Path) -> None:
    write_manifest(folder / "a", "name: twin\ncommand: run\n")
    write_plugin(folder / "a" / "run")
    write_manifest(folder / "b", "name: twin\ncommand: run\n")
    write_plugin(folder / "b" / "run")
    write_plugin(folder / "solo")
    async with plugwire.auto(Req, Resp).from_directory(folder).build() as manager:
        assert manager.discovery is not None
        report = manager.discovery.report
        assert list(report.registered) == ["solo"]
        assert {(Path(r.path).name, r.code) for r in report.refused} == {
            ("a", ErrorCode.CONFIG_DUPLICATE_PLUGIN),
            ("b", ErrorCode.CONFIG_DUPLICATE_PLUGIN),
        }
        assert "twin" not in manager


async def test_a_name_already_registered_is_refused(folder: Path) -> None:
    write_plugin(folder / "auth")
    builder = plugwire.auto(Req, Resp).from_directory(folder).with_plugin("auth", AuthPlugin())
    async with builder.build() as manager:
        assert manager.discovery is not None
        (refusal,) = manager.discovery.report.refused
        assert refusal.code == ErrorCode.PLUGIN_ALREADY_REGISTERED
        assert manager.get_plugin("auth").info().author == "tests"  # the in-process one kept it


async def test_discovered_plugins_get_the_builders_settings(folder: Path) -> None:
    write_plugin(folder / "echo")
    builder = plugwire.auto(Req, Resp).from_directory(folder).with_timeout(7.5).with_retry(max_retries=1)
    async with builder.build() as manager:
        config = manager._entries["echo"].config
        assert config.connection.request_timeout == 7.5
        assert config.retry.max_retries == 1
        assert config.metadata["discovered"] == str(folder / "echo")


async def test_the_config_section_does_the_same_from_a_file(tmp_path: Path, folder: Path) -> None:
    write_plugin(folder / "calc-plugin")
    write_plugin(folder / "other")
    file = tmp_path / "host.json"
    file.write_text(json.dumps({"discovery": {"enabled": True, "directories": ["plugins"], "pattern": "*-plugin"}}))
    config = ManagerConfig.load(file)
    assert config.discovery.directories == (str(folder),)  # relative to the file's folder
    async with plugwire.AsyncPluginManager(Req, Resp, config) as manager:
        assert list(manager.list_plugins()) == ["calc-plugin"]


def test_the_blocking_builder_discovers_before_it_returns(folder: Path) -> None:
    write_plugin(folder / "echo", "4.0.0")
    with plugwire.auto(Req, Resp).from_directory(folder).build_blocking() as manager:
        assert manager.execute("echo", Req(text="b")).text == "4.0.0:b"
        report = manager.discovery_report
        assert report is not None
        assert list(report.registered) == ["echo"]
        assert manager.rescan().added == ()


@pytest.mark.parametrize(
    ("data", "path", "code"),
    [
        ({"discovery": {"enabled": True}}, "discovery.directories", ErrorCode.CONFIG_MISSING_FIELD),
        ({"discovery": {"enabled": True, "directories": ["p"], "pattern": "a/*"}}, "discovery.pattern", 1003),
        ({"discovery": {"enabled": True, "directories": [""]}}, "discovery.directories[0]", 1003),
        ({"discovery": {"watch": "yes"}}, "discovery.watch", ErrorCode.CONFIG_WRONG_TYPE),
        ({"discovery": {"settle": 0}}, "discovery.settle", ErrorCode.CONFIG_INVALID_VALUE),
        ({"discovery": {"folders": []}}, "discovery.folders", ErrorCode.CONFIG_UNKNOWN_KEY),
    ],
)
def test_a_bad_discovery_section_names_its_path(data: dict[str, object], path: str, code: int) -> None:
    with pytest.raises(ConfigError) as caught:
        ManagerConfig.from_dict(data)
    assert caught.value.code == code
    assert caught.value.message.startswith(f"{path}:")


def test_auto_without_a_folder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"discovery\.directories") as caught:
        plugwire.auto(Req, Resp).build()
    assert caught.value.code == ErrorCode.CONFIG_MISSING_FIELD


def test_the_builder_refuses_bad_discovery_settings() -> None:
    builder = plugwire.auto(Req, Resp)
    with pytest.raises(ConfigError, match="with_pattern"):
        builder.with_pattern("sub/*")
    with pytest.raises(ConfigError, match="from_directory"):
        builder.from_directory("")
    with pytest.raises(ConfigError, match="watch"):
        builder.watch(settle=-1)
    assert DiscoveryConfig().enabled is False


async def test_a_failed_plugin_is_tried_again_only_once_its_files_change(tmp_path: Path, folder: Path) -> None:
    runs = tmp_path / "runs.log"
    broken = folder / "flaky"
    broken.write_text(f"#!/bin/sh\necho run >> '{runs}'\nexit 3\n")
    broken.chmod(0o755)
    async with plugwire.auto(Req, Resp).from_directory(folder).build() as manager:
        assert manager.discovery is not None
        started = runs.read_text()
        report = await manager.discovery.rescan()
        assert [r.path for r in report.refused] == [str(broken)]
        assert runs.read_text() == started  # the same files: not started again
        write_plugin(broken, "1.0.1")
        assert str(broken) in (await manager.discovery.rescan()).waiting  # changed: seen once
        report = await manager.discovery.rescan()  # seen again, unchanged: started
        assert report.added == ("flaky",)
        assert report.refused == ()
        assert (await manager.execute("flaky", Req(text="ok"))).text == "1.0.1:ok"


async def test_when_one_of_two_twins_goes_the_other_registers(folder: Path) -> None:
    for twin in ("a", "b"):
        write_manifest(folder / twin, "name: twin\ncommand: run\n")
        write_plugin(folder / twin / "run", f"1.0.{twin == 'b':d}")
    async with plugwire.auto(Req, Resp).from_directory(folder).build() as manager:
        assert manager.discovery is not None
        assert "twin" not in manager
        (folder / "b" / "plugin.yaml").unlink()
        await manager.discovery.rescan()
        report = await manager.discovery.rescan()
        assert report.added == ("twin",)
        assert (await manager.execute("twin", Req(text="x"))).text == "1.0.0:x"


async def test_a_plugin_unregistered_by_hand_is_forgotten_and_found_again(folder: Path) -> None:
    write_plugin(folder / "echo")
    async with plugwire.auto(Req, Resp).from_directory(folder).build() as manager:
        assert manager.discovery is not None
        await manager.unregister("echo")
        report = await manager.discovery.rescan(settled=True)
        assert report.added == ("echo",)
        assert "echo" in manager
