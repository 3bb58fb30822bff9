"""A Go go-plugin plugin that implements plugwire.v1.Plugin (tests/support/go/pwplugin) is
called with `manager.execute` like every plugwire plugin, and is pinned by the whitelist like
every executable plugin: a changed binary is refused at registration and at restart."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import msgspec
import pytest

import plugwire
from plugwire.errors import ErrorCode, PluginError
from plugwire.goplugin import HandshakeConfig

PW = HandshakeConfig(protocol_version=1, magic_cookie_key="PWPLUGIN", magic_cookie_value="plugwire")


class Echo(msgspec.Struct):
    text: str
    n: int = 0


async def test_execute_calls_the_go_plugin_over_plugwire_v1(pwplugin_program: Path) -> None:
    async with plugwire.AsyncPluginManager(Echo, Echo) as manager:
        await manager.register(plugwire.goplugin(str(pwplugin_program), handshake=PW), name="go")
        assert await manager.execute("go", Echo("hello", 3)) == Echo("hello", 3)
        info = manager.get_plugin("go").info()
        assert (info.name, info.version) == ("pwplugin", "1.0.0")
        assert info.metadata["go_plugin.service"] == "plugwire.v1.Plugin"
        health = (await manager.health())["go"]
        assert health.status is plugwire.Status.HEALTHY
        assert health.message == "go plugin ok"  # its own Health, after go-plugin's "plugin" service


async def test_execute_goes_through_the_policies_and_the_audit(pwplugin_program: Path, tmp_path: Path) -> None:
    config = plugwire.PluginConfig(name="go", retry=plugwire.RetryConfig(max_retries=2))
    async with plugwire.AsyncPluginManager(Echo, Echo) as manager:
        await manager.register(plugwire.goplugin(str(pwplugin_program), handshake=PW), name="go", config=config)
        for n in range(20):
            assert (await manager.execute("go", Echo("x", n))).n == n
        assert manager.circuit_breaker("go") is not None
        handle = manager.get_plugin("go")
        assert handle.info().name == "pwplugin"


def pinned(tmp_path: Path, program: Path) -> tuple[Path, plugwire.SecurityConfig]:
    (tmp_path / "plugins").mkdir()
    copy = tmp_path / "plugins" / "pwplugin"  # the audit log may not live in the plugin's folder
    shutil.copy2(program, copy)
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    listed = tmp_path / "plugins.whitelist"
    listed.write_text(
        json.dumps({"version": "1.0", "plugins": [{"name": "go", "path": str(copy), "hash": f"sha256:{digest}"}]})
    )
    security = plugwire.SecurityConfig(
        enabled=True,
        policy=plugwire.SecurityPolicy.STRICT,
        whitelist_file=str(listed),
        audit_config=plugwire.SecurityAuditConfig(enabled=True, audit_file=str(tmp_path / "audit.db")),
    )
    return copy, security


async def test_a_changed_binary_is_refused_at_registration(pwplugin_program: Path, tmp_path: Path) -> None:
    copy, security = pinned(tmp_path, pwplugin_program)
    with copy.open("ab") as binary:
        binary.write(b"\0")
    async with plugwire.AsyncPluginManager(Echo, Echo) as manager:
        await manager.enable_plugin_security(security)
        with pytest.raises(PluginError) as caught:
            await manager.register(plugwire.goplugin(str(copy), handshake=PW), name="go")
        assert caught.value.code == ErrorCode.HASH_MISMATCH
        assert manager.audit is not None
        await manager.audit.aflush()
        assert [r.event for r in manager.audit.query(plugin="go")] == ["plugin.hash_mismatch"]


async def test_a_binary_changed_while_it_runs_is_refused_at_its_restart(pwplugin_program: Path, tmp_path: Path) -> None:
    copy, security = pinned(tmp_path, pwplugin_program)
    restart = plugwire.config.RestartPolicy(initial_backoff=0.01, max_restarts=1)
    source = plugwire.goplugin(str(copy), handshake=PW, options=plugwire.goplugin.GoPluginOptions(restart=restart))
    async with plugwire.AsyncPluginManager(Echo, Echo) as manager:
        await manager.enable_plugin_security(security)
        await manager.register(source, name="go")
        assert await manager.execute("go", Echo("ok")) == Echo("ok")
        with copy.open("ab") as binary:
            binary.write(b"\0")
        pool = manager._registry.lookup("go").transport.pool
        pool.workers[0].process.kill()  # a crash: the supervisor starts the plugin again, verified
        await pool.wait_for(lambda: pool.state.value == "offline")
        assert pool._offline_reason is not None
        assert pool._offline_reason.code == ErrorCode.HASH_MISMATCH
        assert manager.audit is not None
        await manager.audit.aflush()
        events = [r.event for r in manager.audit.query(plugin="go")]
        assert "plugin.crashed" in events
        assert "plugin.hash_mismatch" in events
