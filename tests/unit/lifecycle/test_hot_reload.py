"""`hot_reload`: the config file is watched (watchfiles, or polling without the `watch`
extra) and reloaded after a save by rename or a Kubernetes ConfigMap `..data` symlink swap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

import plugwire
from plugwire import AsyncPluginManager
from plugwire._security import watch
from tests.support.plugins.versioned_plugin import Req, Resp
from tests.unit.lifecycle.test_reload import plugin

Manager = AsyncPluginManager[Req, Resp]


@pytest.fixture(params=["watchfiles", "poll"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "poll":
        monkeypatch.setattr(watch, "watchfiles_available", lambda: False)
    return str(request.param)


def document(version: str, file: Path, **policies: Any) -> str:
    data = {
        "hot_reload": {"enabled": True, "file": str(file), "debounce": "50ms"},
        "plugins": [plugin("a", version, **policies)],
    }
    return yaml.safe_dump(data)


def save_by_rename(path: Path, text: str) -> None:
    """What editors do: write a new file beside it, then rename it over the old one."""
    temporary = path.with_name(f".{path.name}.swp")
    temporary.write_text(text)
    os.replace(temporary, path)


async def test_a_save_by_rename_is_reloaded(tmp_path: Path, backend: str) -> None:
    config = tmp_path / "plugins.yaml"
    config.write_text(document("1", config))
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        hot = manager._hot_reload
        assert hot is not None
        assert hot.watcher.backend == backend
        assert (await manager.execute("a", Req())).version == "1"

        save_by_rename(config, document("2", config))
        await hot.wait_reloads(1)
        assert (await manager.execute("a", Req())).version == "2"

        # An invalid save changes nothing (and is counted as refused); the next good one applies.
        save_by_rename(config, "plugins: [{name: a, retry: {max_retries: many}}]\n")
        await hot.wait_reloads(2)
        assert hot.refused == 1
        assert (await manager.execute("a", Req())).version == "2"
        save_by_rename(config, document("2", config, retry={"max_retries": 0}))
        await hot.wait_reloads(3)
        assert manager._entries["a"].config.retry.max_retries == 0


async def test_a_configmap_symlink_swap_is_reloaded(tmp_path: Path, backend: str) -> None:
    # The layout the kubelet makes: plugins.yaml -> ..data/plugins.yaml, ..data -> ..<timestamp>
    mount = tmp_path / "config"
    mount.mkdir()
    config = mount / "plugins.yaml"
    first = mount / "..2026_12_07_1"
    first.mkdir()
    (first / "plugins.yaml").write_text(document("1", config))
    (mount / "..data").symlink_to(first.name)
    config.symlink_to(Path("..data") / "plugins.yaml")
    async with Manager(Req, Resp, plugwire.ManagerConfig.load(config)) as manager:
        hot = manager._hot_reload
        assert hot is not None
        assert (await manager.execute("a", Req())).version == "1"

        second = mount / "..2026_12_07_2"
        second.mkdir()
        (second / "plugins.yaml").write_text(document("2", config))
        (mount / "..data_tmp").symlink_to(second.name)
        os.replace(mount / "..data_tmp", mount / "..data")  # the atomic swap

        await hot.wait_reloads(1)
        assert (await manager.execute("a", Req())).version == "2"


def test_hot_reload_needs_a_file() -> None:
    with pytest.raises(plugwire.ConfigError) as caught:
        plugwire.ManagerConfig.from_dict({"hot_reload": {"enabled": True}})
    assert "hot_reload.file" in str(caught.value)
