"""The zero-downtime upgrade of a pinned plugin, in the order docs/lifecycle.md gives, under
the strict policy and continuous calls: swap the file, pin its new hash, replace."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import pytest
import yaml

import plugwire
from plugwire import AsyncPluginManager
from plugwire.errors import ErrorCode, ReplacementError
from tests.support.plugins.versioned_plugin import Req, Resp
from tests.support.procguard import PLUGINS, plugin_env

Manager = AsyncPluginManager[Req, Resp]


def script(version: str) -> str:
    """A one-file plugin at `version` (its bytes, and so its hash, differ per version)."""
    target = PLUGINS / "versioned_plugin.py"
    return f"import runpy, sys\nsys.argv[1:] = [{version!r}]\nrunpy.run_path({str(target)!r}, run_name='__main__')\n"


def pin(whitelist: Path, plugin_file: Path) -> None:
    digest = hashlib.sha256(plugin_file.read_bytes()).hexdigest()
    entry = {"name": "v", "path": str(plugin_file), "hash": f"sha256:{digest}"}
    whitelist.write_text(yaml.safe_dump({"version": "1.0", "plugins": [entry]}))


async def test_upgrading_a_pinned_binary_in_the_documented_order_fails_no_call(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    installed = folder / "v.py"
    installed.write_text(script("1"))
    whitelist = tmp_path / "plugins.whitelist"
    pin(whitelist, installed)
    config = plugwire.ManagerConfig(
        security=plugwire.SecurityConfig(
            enabled=True, policy=plugwire.SecurityPolicy.STRICT, whitelist_file=str(whitelist)
        ),
        plugins=(plugwire.PluginConfig(name="v", executable=sys.executable, args=(str(installed),), env=plugin_env()),),
    )
    failures: list[BaseException] = []
    versions: set[str] = set()
    async with Manager(Req, Resp, config) as manager:
        assert (await manager.execute("v", Req())).version == "1"
        stop = asyncio.Event()

        async def caller() -> None:
            while not stop.is_set():
                try:
                    versions.add((await manager.execute("v", Req())).version)
                except plugwire.PluginError as exc:
                    failures.append(exc)
                await asyncio.sleep(0.005)

        callers = [asyncio.create_task(caller()) for _ in range(8)]
        staged = folder / "v.py.new"
        staged.write_text(script("2"))
        os.replace(staged, installed)  # 1. the new file takes the old one's path atomically
        assert manager.security is not None
        pin(whitelist, installed)  # 2. pin its hash ...
        await manager.security.areload()  # ... and load the whitelist (or let watch_config do it)
        result = await manager.replace("v")  # 3. a new generation from the new file
        assert result.version == "2"
        stop.set()
        await asyncio.gather(*callers)
    assert failures == []
    assert versions == {"1", "2"}


async def test_a_replacement_the_whitelist_refuses_leaves_the_old_one_serving(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    installed = folder / "v.py"
    installed.write_text(script("1"))
    whitelist = tmp_path / "plugins.whitelist"
    pin(whitelist, installed)
    config = plugwire.ManagerConfig(
        security=plugwire.SecurityConfig(
            enabled=True, policy=plugwire.SecurityPolicy.STRICT, whitelist_file=str(whitelist)
        ),
        plugins=(plugwire.PluginConfig(name="v", executable=sys.executable, args=(str(installed),), env=plugin_env()),),
    )
    async with Manager(Req, Resp, config) as manager:
        installed.write_text(script("2"))  # a new file the whitelist does not pin
        with pytest.raises(ReplacementError) as caught:
            await manager.replace("v")
        cause = caught.value.__cause__
        assert isinstance(cause, plugwire.PluginError)
        assert cause.code == ErrorCode.HASH_MISMATCH
        assert (await manager.execute("v", Req())).version == "1"
